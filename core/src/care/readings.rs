//! Thresholds for readings.

use crate::model::Vitals;
use serde::{Deserialize, Serialize};

/// Whether a program's reading is under control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "control", content = "reading")]
pub enum Control {
    /// Under target.
    Controlled,
    /// At or above target; the text names the reading (`152/96 mmHg`).
    Uncontrolled(String),
}

/// Blood pressure control (target below 140/90 mmHg); `None` when not measured.
pub fn blood_pressure_control(v: &Vitals) -> Option<Control> {
    let (sys, dia) = (v.systolic_mmhg, v.diastolic_mmhg);
    if sys.is_none() && dia.is_none() {
        return None;
    }
    let high = sys.is_some_and(|s| s >= 140) || dia.is_some_and(|d| d >= 90);
    Some(if high { Control::Uncontrolled(format!("{}/{} mmHg", opt(sys), opt(dia))) } else { Control::Controlled })
}

/// Fasting glucose control (target below 7.0 mmol/L); `None` when not measured.
pub fn glucose_control(v: &Vitals) -> Option<Control> {
    let fasting = v.fasting_glucose_mmol_l?;
    Some(if fasting >= 7.0 {
        Control::Uncontrolled(format!("fasting glucose {fasting} mmol/L"))
    } else {
        Control::Controlled
    })
}

/// Readings that call for an urgent referral, each described.
pub fn danger_values(v: &Vitals) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(s) = v.systolic_mmhg.filter(|s| *s >= 180) {
        found.push(format!("systolic {s} mmHg >= 180"));
    }
    if let Some(d) = v.diastolic_mmhg.filter(|d| *d >= 110) {
        found.push(format!("diastolic {d} mmHg >= 110"));
    }
    for (name, value) in [("fasting glucose", v.fasting_glucose_mmol_l), ("2-hour glucose", v.two_hour_glucose_mmol_l)]
    {
        match value {
            Some(g) if g >= 16.7 => found.push(format!("{name} {g} mmol/L >= 16.7")),
            Some(g) if g <= 3.9 => found.push(format!("{name} {g} mmol/L <= 3.9")),
            _ => {}
        }
    }
    found
}

fn opt(v: Option<u16>) -> String {
    v.map_or_else(|| "?".to_string(), |x| x.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(s: u16, d: u16) -> Vitals {
        Vitals { systolic_mmhg: Some(s), diastolic_mmhg: Some(d), ..Vitals::default() }
    }

    #[test]
    fn blood_pressure_thresholds() {
        assert_eq!(blood_pressure_control(&bp(139, 89)), Some(Control::Controlled));
        assert_eq!(blood_pressure_control(&bp(140, 80)), Some(Control::Uncontrolled("140/80 mmHg".into())));
        assert_eq!(blood_pressure_control(&bp(130, 90)), Some(Control::Uncontrolled("130/90 mmHg".into())));
        assert_eq!(blood_pressure_control(&Vitals::default()), None);
    }

    #[test]
    fn glucose_thresholds() {
        let g = |x| Vitals { fasting_glucose_mmol_l: Some(x), ..Vitals::default() };
        assert_eq!(glucose_control(&g(6.9)), Some(Control::Controlled));
        assert!(matches!(glucose_control(&g(7.0)), Some(Control::Uncontrolled(_))));
        assert_eq!(glucose_control(&Vitals::default()), None);
    }

    #[test]
    fn danger_values_at_their_edges() {
        assert!(danger_values(&bp(179, 109)).is_empty());
        assert_eq!(danger_values(&bp(180, 100)), vec!["systolic 180 mmHg >= 180".to_string()]);
        assert_eq!(danger_values(&bp(170, 110)), vec!["diastolic 110 mmHg >= 110".to_string()]);
        let g = |f, t| Vitals { fasting_glucose_mmol_l: f, two_hour_glucose_mmol_l: t, ..Vitals::default() };
        assert_eq!(danger_values(&g(Some(16.7), None)).len(), 1);
        assert_eq!(danger_values(&g(Some(3.9), None)).len(), 1);
        assert_eq!(danger_values(&g(Some(4.0), Some(16.6))).len(), 0);
        assert_eq!(danger_values(&g(None, Some(20.0))), vec!["2-hour glucose 20 mmol/L >= 16.7".to_string()]);
    }
}
