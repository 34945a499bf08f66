//! A seeded, reproducible consortium to sync: a county hospital, township health centres, village
//! clinics each with a family doctor and their team, and the residents they look after —
//! demographics, chronic conditions at realistic prevalence, contracts, years of visits with
//! plausible vitals, follow-up plans and referrals up to the county and back.
//!
//! [`Params::village_doctor`] is one doctor's phone (2,000 residents, 10 visits each);
//! [`Params::county`] a county relay with 100 doctors. [`populate`] writes a consortium into a
//! store; [`day_of_work`] adds what one day brings (visits at the clinic, the county desk moving
//! referrals).

pub mod clinical;
pub mod people;

use chrono::{Duration, NaiveDate, NaiveTime};
use clinical::Profile;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use yilian_core::model::{
    Direction, NewCondition, NewContract, NewFollowUpPlan, NewPatient, NewReferral, NewReferralEvent, TaskStatus,
    Urgency,
};
use yilian_core::{
    Organization, OrganizationKind, PatientId, Practitioner, PractitionerRole, ReferralId, Result, Store,
};

/// How big a consortium to make, and from which seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Seed of every random draw: the same parameters give the same consortium.
    pub seed: u64,
    /// Family doctors, one village clinic each.
    pub doctors: usize,
    /// Residents signed to or seen by each doctor.
    pub residents_per_doctor: usize,
    /// Visits in each resident's history.
    pub visits_per_resident: usize,
    /// The day the histories run up to (every date in the workload is on or before it).
    pub as_of: NaiveDate,
}

impl Params {
    /// One village doctor's phone: 2,000 residents with 10 visits each.
    pub fn village_doctor() -> Params {
        Params {
            seed: 2026,
            doctors: 1,
            residents_per_doctor: 2_000,
            visits_per_resident: 10,
            as_of: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(),
        }
    }

    /// A county relay: 100 family doctors (their residents set by `residents_per_doctor`).
    pub fn county(residents_per_doctor: usize) -> Params {
        Params { doctors: 100, residents_per_doctor, ..Params::village_doctor() }
    }
}

/// The county hospital every upward referral goes to.
pub const COUNTY_HOSPITAL: &str = "county-people-hospital";
/// The county hospital's referral desk.
pub const COUNTY_DESK: &str = "county-referral-desk";

/// Doctors per township health centre.
const DOCTORS_PER_TOWNSHIP: usize = 10;

/// One family doctor, their clinic and the villages it serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Clinic {
    /// The village clinic.
    pub organization: Organization,
    /// Its family doctor.
    pub doctor: Practitioner,
    /// The family-doctor team residents sign with.
    pub team_id: String,
    /// Villages it serves.
    pub villages: Vec<String>,
}

/// The organizations and practitioners of a consortium.
#[derive(Clone, Debug, PartialEq)]
pub struct Consortium {
    /// County hospital, township centres and village clinics, parents first.
    pub organizations: Vec<Organization>,
    /// The county referral desk and every family doctor.
    pub practitioners: Vec<Practitioner>,
    /// The clinics, one per doctor.
    pub clinics: Vec<Clinic>,
}

impl Consortium {
    /// The consortium's structure for `params` (no residents yet).
    pub fn new(params: &Params) -> Consortium {
        let mut rng = StdRng::seed_from_u64(params.seed ^ 0xC0FFEE);
        let mut organizations = vec![Organization {
            id: COUNTY_HOSPITAL.into(),
            name: "县人民医院".into(),
            kind: OrganizationKind::CountyHospital,
            part_of: None,
        }];
        let practitioners_desk = Practitioner {
            id: COUNTY_DESK.into(),
            name: "县医院转诊中心".into(),
            role: PractitionerRole::ReferralDesk,
            organization_id: COUNTY_HOSPITAL.into(),
        };
        let mut practitioners = vec![practitioners_desk];
        let mut clinics = Vec::with_capacity(params.doctors);
        for d in 0..params.doctors {
            let township = d / DOCTORS_PER_TOWNSHIP;
            let township_id = format!("township-{township:02}");
            if d % DOCTORS_PER_TOWNSHIP == 0 {
                organizations.push(Organization {
                    id: township_id.clone(),
                    name: format!("{}镇卫生院", place_name(&mut rng)),
                    kind: OrganizationKind::TownshipHealthCentre,
                    part_of: Some(COUNTY_HOSPITAL.into()),
                });
            }
            let villages: Vec<String> =
                (0..rng.gen_range(1..=3)).map(|_| format!("{}村", place_name(&mut rng))).collect();
            let organization = Organization {
                id: format!("clinic-{d:03}"),
                name: format!("{}卫生室", villages[0]),
                kind: OrganizationKind::VillageClinic,
                part_of: Some(township_id),
            };
            let doctor = Practitioner {
                id: format!("doctor-{d:03}"),
                name: format!("{}医生", people::demographics(&mut rng, "", 40, params.as_of, 0).name),
                role: PractitionerRole::FamilyDoctor,
                organization_id: organization.id.clone(),
            };
            organizations.push(organization.clone());
            practitioners.push(doctor.clone());
            clinics.push(Clinic { team_id: format!("team-{d:03}"), organization, doctor, villages });
        }
        Consortium { organizations, practitioners, clinics }
    }

    /// Writes the organizations, practitioners and family-doctor teams into `store`'s directory
    /// (a team's contracted residents are in the scope of its doctor's phones).
    pub fn register(&self, store: &Store) -> Result<()> {
        self.directory().enter(store)?;
        Ok(())
    }

    /// The directory as the test kit declares it: the organizations, the practitioners, and a
    /// family-doctor team of each clinic's doctor.
    pub fn directory(&self) -> yilian_testing::Consortium {
        let mut directory = yilian_testing::Consortium::new();
        for org in &self.organizations {
            directory = directory.organization(&org.id, &org.name, org.kind, org.part_of.as_deref());
        }
        for p in &self.practitioners {
            directory = directory.practitioner(&p.id, &p.name, p.role, &p.organization_id);
        }
        for clinic in &self.clinics {
            let name = format!("{}家庭医生团队", clinic.organization.name);
            directory = directory.team(&clinic.team_id, &name, &clinic.organization.id, &[&clinic.doctor.id]);
        }
        directory
    }
}

fn place_name(rng: &mut StdRng) -> String {
    const FIRST: &[&str] = &["石", "柳", "桃", "杨", "黄", "清", "白", "马", "龙", "高", "新", "长", "青", "大", "小"];
    const SECOND: &[&str] =
        &["桥", "树湾", "花坪", "家岭", "泥塘", "水河", "沙洲", "头山", "潭", "坪", "溪", "岗", "冲"];
    format!("{}{}", FIRST.choose(rng).unwrap_or(&"石"), SECOND.choose(rng).unwrap_or(&"桥"))
}

/// One resident as written, with what the generator needs to continue their story.
#[derive(Clone, Debug)]
pub struct Resident {
    /// Their record.
    pub id: PatientId,
    /// Index of their doctor's clinic in [`Consortium::clinics`].
    pub clinic: usize,
    /// Age, conditions, medicines.
    pub profile: Profile,
    /// An upward referral still open at the county, with its status.
    pub open_referral: Option<(ReferralId, TaskStatus)>,
}

/// A consortium written into a store.
#[derive(Clone, Debug)]
pub struct Population {
    /// Its structure.
    pub consortium: Consortium,
    /// Every resident, clinic by clinic.
    pub residents: Vec<Resident>,
    /// The parameters it was made from.
    pub params: Params,
}

/// Writes a consortium for `params` into `store` (directory included) and returns it.
pub fn populate(store: &Store, params: &Params) -> Result<Population> {
    let consortium = Consortium::new(params);
    consortium.register(store)?;
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut residents = Vec::with_capacity(params.doctors * params.residents_per_doctor);
    for (c, clinic) in consortium.clinics.iter().enumerate() {
        for n in 0..params.residents_per_doctor {
            let serial = (c * params.residents_per_doctor + n) as u32;
            residents.push(write_resident(store, &mut rng, params, clinic, c, serial)?);
        }
    }
    Ok(Population { consortium, residents, params: params.clone() })
}

fn write_resident(
    store: &Store,
    rng: &mut StdRng,
    params: &Params,
    clinic: &Clinic,
    clinic_index: usize,
    serial: u32,
) -> Result<Resident> {
    let doctor = clinic.doctor.id.as_str();
    let org = clinic.organization.id.as_str();
    let age = people::draw_age(rng);
    let village = clinic.villages.choose(rng).cloned().unwrap_or_default();
    let demographics = people::demographics(rng, &village, age, params.as_of, serial);
    let (weight_kg, height_cm) = people::build(rng, demographics.sex);
    let mut profile = Profile {
        age,
        sex: demographics.sex,
        conditions: clinical::draw_conditions(rng, age),
        weight_kg,
        height_cm,
        medicines: Vec::new(),
        cigarettes_per_day: if rng.gen_bool(0.25) { rng.gen_range(5..=30) } else { 0 },
    };
    profile.prescribe(rng);
    let id = PatientId(uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid());
    store.create_patient(NewPatient {
        id: Some(id),
        demographics,
        practitioner_id: doctor.into(),
        organization_id: org.into(),
    })?;
    let chronic = !profile.conditions.is_empty();
    let history_days = (params.visits_per_resident as i64 * 91).min(i64::from(age.max(1)) * 365);
    for condition in &profile.conditions {
        store.add_condition(
            id,
            NewCondition {
                icd10: condition.icd10().into(),
                diagnosed_on: params.as_of - Duration::days(history_days + rng.gen_range(30..2_000)),
                practitioner_id: doctor.into(),
                note: String::new(),
            },
        )?;
    }
    // The national programme signs everyone on a chronic-disease list, and about a third of the rest.
    if chronic || rng.gen_bool(0.3) {
        let start = params.as_of - Duration::days(rng.gen_range(0..365));
        store.sign_contract(
            id,
            NewContract {
                team_id: clinic.team_id.clone(),
                practitioner_id: doctor.into(),
                organization_id: org.into(),
                start,
                end: start + Duration::days(364),
            },
        )?;
    }
    // Chronic patients come back every quarter; the others when they fall ill.
    let mut last = params.as_of - Duration::days(history_days);
    for v in 0..params.visits_per_resident {
        let day = if chronic {
            params.as_of - Duration::days((history_days - v as i64 * 91 - rng.gen_range(0..14)).max(1))
        } else {
            params.as_of - Duration::days(rng.gen_range(1..=history_days.max(2)))
        };
        last = last.max(day);
        let at = at_clinic(rng, day);
        store.record_visit(id, clinical::visit(rng, &profile, at, org, doctor))?;
    }
    if chronic {
        store.schedule_follow_up(
            id,
            NewFollowUpPlan {
                due: last + Duration::days(90),
                reason: format!("{}季度随访", profile.conditions[0].icd10()),
                practitioner_id: doctor.into(),
            },
        )?;
    }
    let open_referral = if chronic && rng.gen_bool(0.03) { refer(store, rng, id, clinic, &profile)? } else { None };
    Ok(Resident { id, clinic: clinic_index, profile, open_referral })
}

/// A moment during clinic hours on `day`, in milliseconds since the epoch (China time, UTC+8).
fn at_clinic(rng: &mut StdRng, day: NaiveDate) -> i64 {
    let time = NaiveTime::from_hms_opt(rng.gen_range(8..17), rng.gen_range(0..60), 0).unwrap_or_default();
    day.and_time(time).and_utc().timestamp_millis() - 8 * 3_600_000
}

/// Refers a chronic patient up to the county; two in three have come back down already (the loop
/// closed with a discharge summary and a downward referral for rehabilitation), the others are
/// still open at the county's desk. Returns the open one.
fn refer(
    store: &Store,
    rng: &mut StdRng,
    patient: PatientId,
    clinic: &Clinic,
    profile: &Profile,
) -> Result<Option<(ReferralId, TaskStatus)>> {
    let condition = profile.conditions[0];
    let upward = store.create_referral(
        patient,
        NewReferral {
            direction: Direction::Upward,
            from_organization_id: clinic.organization.id.clone(),
            from_practitioner_id: clinic.doctor.id.clone(),
            to_organization_id: COUNTY_HOSPITAL.into(),
            reason: format!("{} 控制不佳，需上级医院调整治疗", condition.icd10()),
            urgency: if rng.gen_bool(0.2) { Urgency::Urgent } else { Urgency::Routine },
            clinical_summary: "连续两次随访控制不满意，已调整用药仍未达标。".into(),
            in_response_to: None,
        },
    )?;
    let desk = |status, discharge_summary: Option<&str>| NewReferralEvent {
        status,
        by_practitioner_id: COUNTY_DESK.into(),
        by_organization_id: COUNTY_HOSPITAL.into(),
        note: String::new(),
        discharge_summary: discharge_summary.map(str::to_string),
    };
    let open_at = match rng.gen_range(0..3) {
        0 => Some(TaskStatus::Requested),
        1 => Some(TaskStatus::Accepted),
        _ => None,
    };
    let path = [TaskStatus::Received, TaskStatus::Accepted, TaskStatus::InProgress];
    for status in path {
        if open_at == Some(TaskStatus::Requested)
            || (open_at == Some(TaskStatus::Accepted) && status == TaskStatus::InProgress)
        {
            break;
        }
        store.add_referral_event(upward, desk(status, None))?;
    }
    if let Some(status) = open_at {
        return Ok(Some((upward, status)));
    }
    store.add_referral_event(
        upward,
        desk(TaskStatus::Completed, Some("住院7天，调整治疗后好转出院，转回社区继续管理。")),
    )?;
    store.create_referral(
        patient,
        NewReferral {
            direction: Direction::Downward,
            from_organization_id: COUNTY_HOSPITAL.into(),
            from_practitioner_id: COUNTY_DESK.into(),
            to_organization_id: clinic.organization.id.clone(),
            reason: "出院后康复及随访管理".into(),
            urgency: Urgency::Routine,
            clinical_summary: "出院带药同前，两周后复查。".into(),
            in_response_to: Some(upward),
        },
    )?;
    Ok(None)
}

/// What one day added.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Day {
    /// Residents who were seen.
    pub visited: Vec<PatientId>,
    /// Referrals the county desk moved, with their new status.
    pub referral_events: Vec<(PatientId, ReferralId, TaskStatus)>,
}

/// One day's work on `day` (after the population's `as_of`): `visits` residents of clinic 0 seen
/// (chronic patients first, as on a follow-up day), and `referral_events` open referrals moved
/// one step on by the county desk. Each resident is touched once: referrals are taken from
/// residents not seen that day. Seeded by `seed`.
pub fn day_of_work(
    store: &Store,
    population: &mut Population,
    day: NaiveDate,
    visits: usize,
    referral_events: usize,
    seed: u64,
) -> Result<Day> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Day::default();
    let clinic = &population.consortium.clinics[0];
    let (org, doctor) = (clinic.organization.id.clone(), clinic.doctor.id.clone());
    let mut candidates: Vec<usize> = (0..population.residents.len())
        .filter(|&i| population.residents[i].clinic == 0 && population.residents[i].open_referral.is_none())
        .collect();
    candidates.shuffle(&mut rng);
    candidates.sort_by_key(|&i| population.residents[i].profile.conditions.is_empty());
    for &i in candidates.iter().take(visits) {
        let resident = &population.residents[i];
        let at = at_clinic(&mut rng, day);
        store.record_visit(resident.id, clinical::visit(&mut rng, &resident.profile, at, &org, &doctor))?;
        out.visited.push(resident.id);
    }
    for resident in population.residents.iter_mut().filter(|r| r.open_referral.is_some()).take(referral_events) {
        let Some((referral, status)) = resident.open_referral else { continue };
        let next = match status {
            TaskStatus::Requested => TaskStatus::Received,
            TaskStatus::Received => TaskStatus::Accepted,
            _ => TaskStatus::InProgress,
        };
        store.add_referral_event(
            referral,
            NewReferralEvent {
                status: next,
                by_practitioner_id: COUNTY_DESK.into(),
                by_organization_id: COUNTY_HOSPITAL.into(),
                note: "已安排床位".into(),
                discharge_summary: None,
            },
        )?;
        resident.open_referral = (next != TaskStatus::InProgress).then_some((referral, next));
        out.referral_events.push((resident.id, referral, next));
    }
    Ok(out)
}

/// A normally distributed draw (Box–Muller).
pub fn normal(rng: &mut StdRng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Params {
        Params { doctors: 2, residents_per_doctor: 150, visits_per_resident: 4, ..Params::village_doctor() }
    }

    use yilian_core::StoreOptions;

    #[test]
    fn the_same_seed_makes_the_same_consortium() -> Result<()> {
        let (a, b) = (Store::open_in_memory(StoreOptions::default())?, Store::open_in_memory(StoreOptions::default())?);
        let (pa, pb) = (populate(&a, &small())?, populate(&b, &small())?);
        assert_eq!(pa.consortium, pb.consortium);
        let ids = |p: &Population| p.residents.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(&pa), ids(&pb));
        let first = |s: &Store, p: &Population| s.patient(p.residents[7].id).map(|r| r.demographics().clone());
        assert_eq!(first(&a, &pa)?, first(&b, &pb)?);
        let other = populate(&Store::open_in_memory(StoreOptions::default())?, &Params { seed: 9, ..small() })?;
        assert_ne!(ids(&other), ids(&pa));
        Ok(())
    }

    #[test]
    fn a_population_has_chronic_patients_contracts_visits_and_referrals() -> Result<()> {
        let store = Store::open_in_memory(StoreOptions::default())?;
        let mut population = populate(&store, &small())?;
        assert_eq!(population.residents.len(), 300);
        assert_eq!(store.patient_ids()?.len(), 300);
        let chronic = population.residents.iter().filter(|r| !r.profile.conditions.is_empty()).count();
        assert!((60..200).contains(&chronic), "{chronic} of 300 on a chronic programme");
        let record = store.patient(population.residents[0].id)?;
        assert_eq!(record.visits.len(), 4);
        assert!(store.practitioners()?.iter().any(|p| p.id == COUNTY_DESK));
        // Enough open referrals for a day's desk work, even in a small population.
        let open = population.residents.iter().filter(|r| r.open_referral.is_some()).count();
        let before = store.last_seq()?;
        let day = day_of_work(&store, &mut population, small().as_of + Duration::days(1), 20, open.min(2), 5)?;
        assert_eq!(day.visited.len(), 20);
        assert_eq!(day.referral_events.len(), open.min(2));
        assert_eq!(store.last_seq()? - before, 20 + open.min(2) as i64);
        Ok(())
    }
}
