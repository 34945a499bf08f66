//! A consortium on an in-memory relay: a county hospital and two village clinics, their doctors
//! and a team, a hypertensive resident referred upward, and a token per role.

use super::Api;
use super::{now_ms, today};
use axum::http::StatusCode;
use chrono::{Days, NaiveDate};
use serde_json::Value;
use yilian_core::model::*;
use yilian_core::store::OperatorRole;
use yilian_core::{OrganizationKind, PatientId, PractitionerRole, ReferralId};
use yilian_testing::Consortium;

pub const COUNTY: &str = "county";
pub const VILLAGE: &str = "shiqiao";
pub const OTHER: &str = "dongcun";

pub struct Desk {
    pub api: Api,
    pub county_desk: String,
    pub village_desk: String,
    pub other_desk: String,
    pub analyst: String,
    pub patient: PatientId,
    pub referral: ReferralId,
}

/// A consortium (county hospital, two village clinics), a hypertensive resident of Shiqiao last
/// seen 200 days ago (overdue), referred upward to the county hospital, and a token per role.
pub fn consortium() -> Desk {
    let api = Api::new();
    let s = &api.store;
    let named = |id: &str| format!("{id} 机构");
    let person = |id: &str| format!("{id} 医生");
    Consortium::new()
        .organization(COUNTY, &named(COUNTY), OrganizationKind::CountyHospital, None)
        .organization(VILLAGE, &named(VILLAGE), OrganizationKind::VillageClinic, Some(COUNTY))
        .organization(OTHER, &named(OTHER), OrganizationKind::VillageClinic, Some(COUNTY))
        .family_doctor("dr-wang", &person("dr-wang"), VILLAGE)
        .practitioner("dr-sun", &person("dr-sun"), PractitionerRole::Specialist, COUNTY)
        .family_doctor("dr-zhou", &person("dr-zhou"), OTHER)
        .team("team-shiqiao", "石桥一队", VILLAGE, &[])
        .enter(s)
        .unwrap();
    let patient = s
        .create_patient(NewPatient {
            id: None,
            demographics: Demographics {
                name: "刘桂兰".into(),
                sex: Sex::Female,
                birth_date: NaiveDate::from_ymd_opt(1951, 2, 3).unwrap(),
                national_id: None,
                phone: None,
                address: None,
                village: Some("石桥村".into()),
            },
            practitioner_id: "dr-wang".into(),
            organization_id: VILLAGE.into(),
        })
        .unwrap();
    let start = today().checked_sub_days(Days::new(300)).unwrap();
    let contract = NewContract {
        team_id: "team-shiqiao".into(),
        practitioner_id: "dr-wang".into(),
        organization_id: VILLAGE.into(),
        start,
        end: start.checked_add_days(Days::new(365)).unwrap(),
    };
    s.sign_contract(patient, contract).unwrap();
    s.add_condition(
        patient,
        NewCondition {
            icd10: "I10".into(),
            diagnosed_on: start,
            practitioner_id: "dr-wang".into(),
            note: String::new(),
        },
    )
    .unwrap();
    let visit = NewVisit {
        at: now_ms() - 200 * 86_400_000,
        organization_id: VILLAGE.into(),
        practitioner_id: "dr-wang".into(),
        kind: VisitKind::FollowUp,
        vitals: Vitals { systolic_mmhg: Some(150), diastolic_mmhg: Some(95), ..Vitals::default() },
        symptoms: vec![],
        diagnoses: vec!["I10".into()],
        medicines: vec![],
        lifestyle: Lifestyle::default(),
        notes: String::new(),
    };
    s.record_visit(patient, visit).unwrap();
    let referral = s
        .create_referral(
            patient,
            NewReferral {
                direction: Direction::Upward,
                from_organization_id: VILLAGE.into(),
                from_practitioner_id: "dr-wang".into(),
                to_organization_id: COUNTY.into(),
                reason: "uncontrolled hypertension".into(),
                urgency: Urgency::Urgent,
                clinical_summary: "150/95 on two drugs".into(),
                in_response_to: None,
            },
        )
        .unwrap();
    let county_desk = s.create_admin_token("desk-county", OperatorRole::ReferralDesk, Some(COUNTY)).unwrap();
    let village_desk = s.create_admin_token("desk-shiqiao", OperatorRole::ReferralDesk, Some(VILLAGE)).unwrap();
    let other_desk = s.create_admin_token("desk-dongcun", OperatorRole::ReferralDesk, Some(OTHER)).unwrap();
    let analyst = s.create_admin_token("analyst-sun", OperatorRole::Analyst, None).unwrap();
    Desk { api, county_desk, village_desk, other_desk, analyst, patient, referral }
}

impl Desk {
    pub async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        self.api.call("GET", uri, Some(token), None).await
    }

    pub async fn post(&self, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.api.call("POST", uri, Some(token), Some(body)).await
    }
}
