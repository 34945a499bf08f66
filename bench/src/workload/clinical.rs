//! What the residents live with and what the doctor writes down: chronic conditions at the
//! prevalence Chinese surveys report for rural adults, and visits with vitals that fit them.

use super::normal;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use yilian_core::model::{Adherence, Lifestyle, Medicine, NewVisit, SaltIntake, Sex, VisitKind, Vitals};
use yilian_core::time::Millis;

/// A chronic condition the family-doctor team follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chronic {
    /// Essential hypertension, I10.
    Hypertension,
    /// Type 2 diabetes, E11.9.
    Diabetes,
    /// COPD, J44.9.
    Copd,
    /// Sequelae of cerebral infarction, I69.3 (rehabilitation).
    Stroke,
    /// Chronic ischaemic heart disease, I25.1.
    Coronary,
}

impl Chronic {
    /// The ICD-10 code the doctor records.
    pub fn icd10(self) -> &'static str {
        match self {
            Chronic::Hypertension => "I10",
            Chronic::Diabetes => "E11.9",
            Chronic::Copd => "J44.9",
            Chronic::Stroke => "I69.3",
            Chronic::Coronary => "I25.1",
        }
    }

    /// Chance that a resident of `age` lives with it (China Hypertension Survey 2012–2015, the
    /// China Chronic Disease and Risk Factor Surveillance, China Pulmonary Health study).
    pub fn prevalence(self, age: u32) -> f64 {
        match (self, age) {
            (_, 0..=17) => 0.0,
            (Chronic::Hypertension, 18..=34) => 0.05,
            (Chronic::Hypertension, 35..=44) => 0.15,
            (Chronic::Hypertension, 45..=59) => 0.30,
            (Chronic::Hypertension, _) => 0.50,
            (Chronic::Diabetes, 18..=44) => 0.05,
            (Chronic::Diabetes, 45..=59) => 0.12,
            (Chronic::Diabetes, _) => 0.20,
            (Chronic::Copd, 18..=39) => 0.0,
            (Chronic::Copd, 40..=59) => 0.06,
            (Chronic::Copd, _) => 0.14,
            (Chronic::Stroke | Chronic::Coronary, 18..=59) => 0.01,
            (Chronic::Stroke, _) => 0.04,
            (Chronic::Coronary, _) => 0.05,
        }
    }

    /// Every condition, in the order they are drawn.
    pub const ALL: [Chronic; 5] =
        [Chronic::Hypertension, Chronic::Diabetes, Chronic::Copd, Chronic::Stroke, Chronic::Coronary];

    /// Usual long-term medicines (generic names, dose, frequency).
    fn regimens(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Chronic::Hypertension => &[
                ("苯磺酸氨氯地平片", "5 mg", "qd"),
                ("硝苯地平缓释片", "20 mg", "bid"),
                ("缬沙坦胶囊", "80 mg", "qd"),
                ("厄贝沙坦片", "150 mg", "qd"),
                ("吲达帕胺片", "2.5 mg", "qd"),
            ],
            Chronic::Diabetes => {
                &[("盐酸二甲双胍片", "0.5 g", "tid"), ("格列美脲片", "2 mg", "qd"), ("阿卡波糖片", "50 mg", "tid")]
            }
            Chronic::Copd => &[("噻托溴铵粉吸入剂", "18 μg", "qd"), ("沙美特罗替卡松粉吸入剂", "50/250 μg", "bid")],
            Chronic::Stroke => &[("阿司匹林肠溶片", "100 mg", "qd"), ("阿托伐他汀钙片", "20 mg", "qn")],
            Chronic::Coronary => &[("阿司匹林肠溶片", "100 mg", "qd"), ("单硝酸异山梨酯缓释片", "40 mg", "qd")],
        }
    }

    fn symptoms(self) -> &'static [&'static str] {
        match self {
            Chronic::Hypertension => &["头晕", "头痛", "心悸"],
            Chronic::Diabetes => &["口渴", "多尿", "乏力", "视物模糊"],
            Chronic::Copd => &["咳嗽", "咳痰", "气短"],
            Chronic::Stroke => &["肢体麻木", "言语不清", "行走不稳"],
            Chronic::Coronary => &["胸闷", "胸痛", "心悸"],
        }
    }
}

/// The conditions a resident of `age` lives with.
pub fn draw_conditions(rng: &mut StdRng, age: u32) -> Vec<Chronic> {
    Chronic::ALL.into_iter().filter(|c| rng.gen_bool(c.prevalence(age))).collect()
}

/// A resident as the doctor knows them between visits.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Age on the day the workload is made.
    pub age: u32,
    /// Sex.
    pub sex: Sex,
    /// Chronic conditions.
    pub conditions: Vec<Chronic>,
    /// Usual weight, kg (adults).
    pub weight_kg: f64,
    /// Height, cm (adults).
    pub height_cm: f64,
    /// Medicines they take.
    pub medicines: Vec<Medicine>,
    /// Cigarettes a day.
    pub cigarettes_per_day: u16,
}

impl Profile {
    /// Picks medicines for each condition (most take one or two; some have stopped).
    pub fn prescribe(&mut self, rng: &mut StdRng) {
        for condition in &self.conditions {
            let regimens = condition.regimens();
            let count = if rng.gen_bool(0.3) { 2 } else { 1 };
            for (name, dose, frequency) in regimens.choose_multiple(rng, count.min(regimens.len())) {
                if self.medicines.iter().any(|m| m.name == *name) {
                    continue;
                }
                let adherence = match rng.gen_range(0..10) {
                    0..=6 => Adherence::Regular,
                    7..=8 => Adherence::Intermittent,
                    _ => Adherence::NotTaking,
                };
                self.medicines.push(Medicine {
                    name: (*name).into(),
                    dose: (*dose).into(),
                    frequency: (*frequency).into(),
                    adherence,
                });
            }
        }
    }

    fn has(&self, condition: Chronic) -> bool {
        self.conditions.contains(&condition)
    }
}

/// A visit at `at` by `practitioner` of `organization`: a face-to-face chronic follow-up for
/// residents on a programme (now and then by phone), a clinic visit for the others.
pub fn visit(rng: &mut StdRng, profile: &Profile, at: Millis, organization: &str, practitioner: &str) -> NewVisit {
    let chronic = !profile.conditions.is_empty();
    let kind = match (chronic, rng.gen_range(0..10)) {
        (true, 0) => VisitKind::Telemedicine,
        (true, 1..=2) => VisitKind::HomeVisit,
        (true, _) => VisitKind::FollowUp,
        (false, _) => VisitKind::Clinic,
    };
    let mut vitals = Vitals::default();
    if kind != VisitKind::Telemedicine && profile.age >= 15 {
        let (systolic, diastolic) = if profile.has(Chronic::Hypertension) {
            (normal(rng, 145.0, 15.0), normal(rng, 88.0, 10.0))
        } else {
            (normal(rng, 122.0, 12.0), normal(rng, 76.0, 8.0))
        };
        let systolic = systolic.clamp(90.0, 220.0).round() as u16;
        vitals.systolic_mmhg = Some(systolic);
        vitals.diastolic_mmhg = Some((diastolic.clamp(50.0, 130.0).round() as u16).min(systolic - 20));
        vitals.heart_rate_bpm = Some(normal(rng, 76.0, 9.0).clamp(48.0, 130.0).round() as u16);
        vitals.weight_kg = Some(((profile.weight_kg + normal(rng, 0.0, 1.2)) * 10.0).round() / 10.0);
        if rng.gen_bool(0.2) {
            vitals.height_cm = Some(profile.height_cm);
        }
        if profile.has(Chronic::Diabetes) {
            vitals.fasting_glucose_mmol_l = Some((normal(rng, 7.8, 1.5).clamp(3.5, 20.0) * 10.0).round() / 10.0);
            if rng.gen_bool(0.25) {
                vitals.two_hour_glucose_mmol_l = Some((normal(rng, 11.5, 2.5).clamp(5.0, 28.0) * 10.0).round() / 10.0);
            }
        }
        if profile.has(Chronic::Copd) {
            vitals.spo2_percent = Some(normal(rng, 93.0, 2.5).clamp(80.0, 100.0).round() as u8);
        }
    }
    let mut symptoms = Vec::new();
    for condition in &profile.conditions {
        if rng.gen_bool(0.3)
            && let Some(s) = condition.symptoms().choose(rng)
        {
            symptoms.push((*s).to_string());
        }
    }
    if !chronic && symptoms.is_empty() {
        symptoms.push((*["咳嗽", "发热", "咽痛", "腰痛", "腹泻", "皮疹"].choose(rng).unwrap_or(&"咳嗽")).to_string());
    }
    let diagnoses = if chronic {
        profile.conditions.iter().map(|c| c.icd10().to_string()).collect()
    } else {
        vec![["J06.9", "M54.5", "K52.9", "L30.9", "R50.9"].choose(rng).unwrap_or(&"J06.9").to_string()]
    };
    let lifestyle = if chronic && profile.age >= 15 {
        Lifestyle {
            cigarettes_per_day: Some(profile.cigarettes_per_day),
            alcohol_ml_per_day: Some([0, 0, 0, 50, 100][rng.gen_range(0..5)]),
            exercise_minutes_per_week: Some(rng.gen_range(0..=30) * 10),
            salt: Some([SaltIntake::Light, SaltIntake::Moderate, SaltIntake::Heavy][rng.gen_range(0..3)]),
        }
    } else {
        Lifestyle::default()
    };
    let notes = match (kind, vitals.systolic_mmhg) {
        (VisitKind::Telemedicine, _) => "电话随访，自述血压、血糖平稳，按时服药。".to_string(),
        (_, Some(s)) if s >= 160 => "血压控制不满意，嘱低盐饮食、规律服药，两周后复查。".to_string(),
        (_, Some(_)) if chronic => "控制满意，继续目前治疗，下次随访三个月后。".to_string(),
        _ => "对症处理，嘱多饮水、注意休息，不适随诊。".to_string(),
    };
    NewVisit {
        at,
        organization_id: organization.into(),
        practitioner_id: practitioner.into(),
        kind,
        vitals,
        symptoms,
        diagnoses,
        medicines: if chronic { profile.medicines.clone() } else { Vec::new() },
        lifestyle,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn profile(conditions: Vec<Chronic>) -> Profile {
        Profile {
            age: 67,
            sex: Sex::Female,
            conditions,
            weight_kg: 58.0,
            height_cm: 154.0,
            medicines: Vec::new(),
            cigarettes_per_day: 0,
        }
    }

    #[test]
    fn hypertension_is_common_among_the_old_and_absent_in_children() {
        let mut rng = StdRng::seed_from_u64(1);
        let share = |rng: &mut StdRng, age| {
            (0..10_000).filter(|_| draw_conditions(rng, age).contains(&Chronic::Hypertension)).count() as f64 / 1e4
        };
        assert!((0.47..0.53).contains(&share(&mut rng, 70)));
        assert!((0.27..0.33).contains(&share(&mut rng, 50)));
        assert_eq!(share(&mut rng, 10), 0.0);
    }

    #[test]
    fn every_visit_passes_the_engines_checks_and_fits_the_condition() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut hypertensive = profile(vec![Chronic::Hypertension, Chronic::Diabetes, Chronic::Copd]);
        hypertensive.prescribe(&mut rng);
        let healthy = profile(vec![]);
        let mut systolic = (0.0, 0.0);
        for n in 0..2_000 {
            let v = visit(&mut rng, &hypertensive, 1_700_000_000_000 + n, "clinic", "dr");
            v.validated(yilian_core::time::now_ms()).expect("a generated visit is valid");
            systolic.0 += f64::from(v.vitals.systolic_mmhg.unwrap_or(145));
            let w = visit(&mut rng, &healthy, 1_700_000_000_000 + n, "clinic", "dr");
            w.validated(yilian_core::time::now_ms()).expect("a generated visit is valid");
            assert_eq!(w.kind, VisitKind::Clinic);
            assert!(w.vitals.fasting_glucose_mmol_l.is_none());
            systolic.1 += f64::from(w.vitals.systolic_mmhg.unwrap_or(0));
        }
        let (hyper, normal) = (systolic.0 / 2_000.0, systolic.1 / 2_000.0);
        assert!(hyper > normal + 15.0, "hypertensive mean {hyper} vs {normal}");
    }
}
