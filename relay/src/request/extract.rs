//! What handlers take from a request: the operator behind the bearer token, and a JSON body or
//! query string whose rejection is answered as a JSON error naming the problem (axum's own
//! rejections answer in plain text).

use super::{AppError, AppState, blocking};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use yilian_core::store::OperatorRole;

/// The operator making a request: the live API token presented as `Authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub struct Operator {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub role: OperatorRole,
    /// The organization it acts for; none for a consortium-wide token.
    pub organization_id: Option<String>,
}

impl Operator {
    /// 403 unless the operator has one of `roles`.
    pub fn allow(&self, roles: &[OperatorRole]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let needed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(AppError::Forbidden(format!(
            "token {} has the role {}; this needs {}",
            self.name,
            self.role,
            needed.join(" or ")
        )))
    }

    /// 403 unless the token is consortium-wide or acts for one of `organizations`.
    pub fn allow_organization(&self, organizations: &[&str]) -> Result<(), AppError> {
        match &self.organization_id {
            None => Ok(()),
            Some(own) if organizations.contains(&own.as_str()) => Ok(()),
            Some(own) => Err(AppError::Forbidden(format!(
                "token {} acts for {own}; this concerns {}",
                self.name,
                organizations.join(" and ")
            ))),
        }
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthorized)?
            .trim()
            .to_string();
        let storage = state.storage.clone();
        match blocking(move || storage.admin_token_owner(&token)).await? {
            Some(o) => Ok(Operator { name: o.name, role: o.role, organization_id: o.organization_id }),
            None => Err(AppError::Unauthorized),
        }
    }
}

/// An operator with the `admin` role (the directory, enrollment, devices, audit): the token's name.
pub struct Admin(pub String);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let operator = Operator::from_request_parts(parts, state).await?;
        operator.allow(&[OperatorRole::Admin])?;
        Ok(Admin(operator.name))
    }
}

/// A JSON request body; a malformed one is a 400 naming what is wrong with it.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(AppError::BadRequest(format!("request body: {}", rejection.body_text()))),
        }
    }
}

/// Query-string parameters; malformed ones are a 400 naming the parameter.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(AppError::BadRequest(format!("query: {}", rejection.body_text()))),
        }
    }
}
