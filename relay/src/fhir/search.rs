//! FHIR search parameters (`?patient=...&date=ge2026-01-01&date=le2026-06-30`) and the
//! `CapabilityStatement` that lists what the relay supports.

use super::{FhirError, bad};
use chrono::NaiveDate;
use serde_json::{Value, json};

/// The parameters of a search, in order, repeated ones kept.
pub struct SearchParams(Vec<(String, String)>);

impl SearchParams {
    /// Parses a query string (percent-decoded, `+` as space).
    pub fn parse(query: &str) -> SearchParams {
        SearchParams(form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    /// 400 naming the first parameter that is not one of `allowed` (the paging parameters
    /// `_count` and `_offset` are allowed everywhere).
    pub fn only(&self, allowed: &[&str]) -> Result<(), FhirError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str()) && !PAGING.contains(&k.as_str())) {
            None => Ok(()),
            Some((k, _)) if allowed.is_empty() => Err(bad(format!("search parameter {k:?} is not supported here"))),
            Some((k, _)) => {
                Err(bad(format!("search parameter {k:?} is not supported here; use {}", allowed.join(", "))))
            }
        }
    }

    /// The value of a parameter that may appear once.
    pub fn single(&self, name: &str) -> Result<Option<String>, FhirError> {
        let mut values = self.all(name);
        let first = values.next().map(str::to_string);
        if values.next().is_some() {
            return Err(bad(format!("search parameter {name:?} may appear once")));
        }
        Ok(first)
    }

    /// The page asked for: `_count` entries (default [`DEFAULT_COUNT`], at most [`MAX_COUNT`]; 0
    /// answers the total alone) after the first `_offset` matches.
    pub fn paging(&self) -> Result<(usize, usize), FhirError> {
        let number = |name: &str, default: usize, most: usize| -> Result<usize, FhirError> {
            match self.single(name)? {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= most)
                    .ok_or_else(|| bad(format!("{name}: {v:?} is not a number from 0 to {most}"))),
            }
        };
        Ok((number("_count", DEFAULT_COUNT, MAX_COUNT)?, number("_offset", 0, usize::MAX)?))
    }

    /// The query string of these parameters without the paging ones, then `_count` and `_offset`.
    pub fn with_page(&self, count: usize, offset: usize) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| !PAGING.contains(&k.as_str())) {
            out.append_pair(k, v);
        }
        out.append_pair("_count", &count.to_string());
        out.append_pair("_offset", &offset.to_string());
        out.finish()
    }

    /// Every value of a parameter.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The paging parameters, accepted by every search.
const PAGING: [&str; 2] = ["_count", "_offset"];
/// Entries in a page of search results when `_count` is not given.
pub const DEFAULT_COUNT: usize = 100;
/// The largest `_count`.
pub const MAX_COUNT: usize = 1000;

/// A date search (`ge2026-01-01`), at day precision.
pub struct DateFilter {
    prefix: Prefix,
    day: NaiveDate,
}

#[derive(Clone, Copy)]
enum Prefix {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl DateFilter {
    /// Parses `[prefix]YYYY-MM-DD` for the parameter `name`.
    pub fn parse(name: &str, value: &str) -> Result<DateFilter, FhirError> {
        let prefixes = [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("lt", Prefix::Lt),
            ("gt", Prefix::Gt),
            ("le", Prefix::Le),
            ("ge", Prefix::Ge),
        ];
        let (prefix, day) = prefixes
            .iter()
            .find_map(|(p, prefix)| value.strip_prefix(p).map(|rest| (*prefix, rest)))
            .unwrap_or((Prefix::Eq, value));
        let day = day.parse().map_err(|_| bad(format!("{name}: {value:?} is not [eq|ne|lt|gt|le|ge]YYYY-MM-DD")))?;
        Ok(DateFilter { prefix, day })
    }

    /// Whether a resource dated `day` matches.
    pub fn matches(&self, day: NaiveDate) -> bool {
        match self.prefix {
            Prefix::Eq => day == self.day,
            Prefix::Ne => day != self.day,
            Prefix::Lt => day < self.day,
            Prefix::Gt => day > self.day,
            Prefix::Le => day <= self.day,
            Prefix::Ge => day >= self.day,
        }
    }
}

/// What the relay's FHIR endpoint supports; `clinical` lists the types searched by patient with
/// their date parameter.
pub fn capability_statement(clinical: &[(&str, &str)]) -> Value {
    let reference = |name: &str| json!({ "name": name, "type": "reference" });
    let mut resources = vec![json!({
        "type": "Patient",
        "interaction": [{ "code": "read" }, { "code": "search-type" }],
        "searchParam": [{ "name": "_id", "type": "token" }],
        "operation": [{ "name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything" }],
    })];
    for (kind, date) in clinical {
        let mut interaction = vec![json!({ "code": "search-type" })];
        if matches!(*kind, "Task" | "ServiceRequest") {
            interaction.insert(0, json!({ "code": "read" }));
        }
        resources.push(json!({
            "type": kind,
            "interaction": interaction,
            "searchParam": [reference("patient"), { "name": date, "type": "date" }],
        }));
    }
    for kind in ["Practitioner", "Organization", "CareTeam"] {
        resources.push(json!({ "type": kind, "interaction": [{ "code": "read" }, { "code": "search-type" }] }));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "Yilian",
        "kind": "instance",
        "software": { "name": "yilian-relay", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Yilian consortium relay: family-doctor records, visits and two-way referrals" },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": { "description": "Authorization: Bearer <operator token>; every record read is logged" },
            "resource": resources,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_prefixes_compare_days() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap_or_default();
        let ge = DateFilter::parse("date", "ge2026-03-01").unwrap_or_else(|_| panic!("parses"));
        assert!(ge.matches(day("2026-03-01")) && ge.matches(day("2026-04-01")) && !ge.matches(day("2026-02-28")));
        let eq = DateFilter::parse("date", "2026-03-01").unwrap_or_else(|_| panic!("parses"));
        assert!(eq.matches(day("2026-03-01")) && !eq.matches(day("2026-03-02")));
        assert!(DateFilter::parse("date", "sa2026-03-01").is_err());
        assert!(DateFilter::parse("date", "ge2026-13-01").is_err());
        let params = SearchParams::parse("patient=Patient%2Fabc&date=ge2026-01-01&date=le2026-02-01");
        assert_eq!(params.single("patient").ok().flatten().as_deref(), Some("Patient/abc"));
        assert_eq!(params.all("date").count(), 2);
        assert!(params.single("date").is_err());
        assert!(params.only(&["patient"]).is_err());
    }
}
