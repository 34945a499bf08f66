//! Who lives in the villages: names, sex, ages skewed old (the young work in the cities), resident
//! identity numbers with a valid check character, phones and addresses.

use super::normal;
use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use yilian_core::model::{Demographics, Sex};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马",
    "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧",
];
const MALE_GIVEN: &[&str] = &[
    "建国", "国强", "志刚", "建华", "德明", "文斌", "海涛", "永福", "长生", "卫东", "明", "军", "勇", "伟", "强", "磊",
];
const FEMALE_GIVEN: &[&str] = &[
    "秀英", "桂兰", "玉兰", "秀珍", "淑华", "凤英", "春梅", "丽娟", "红霞", "翠花", "芳", "娟", "敏", "静", "丽", "霞",
];

/// Share of residents by age band, for a village where working-age adults have left for work.
const AGE_BANDS: &[(u32, u32, f64)] =
    &[(0, 14, 0.14), (15, 34, 0.14), (35, 44, 0.12), (45, 59, 0.26), (60, 74, 0.24), (75, 92, 0.10)];

/// Six-digit administrative division code of the county the villages belong to.
const AREA_CODE: &str = "430725";

/// Weights of the first 17 characters of a resident identity number (GB 11643).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each remainder modulo 11 (ISO 7064 MOD 11-2).
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// A resident's age on `as_of`, drawn from the village age structure.
pub fn draw_age(rng: &mut StdRng) -> u32 {
    let mut pick = rng.gen_range(0.0..1.0);
    for &(low, high, share) in AGE_BANDS {
        if pick < share {
            return rng.gen_range(low..=high);
        }
        pick -= share;
    }
    rng.gen_range(60..=92)
}

/// Demographics of a resident of `village` aged `age` on `as_of`; `serial` keeps identity
/// numbers distinct within a consortium.
pub fn demographics(rng: &mut StdRng, village: &str, age: u32, as_of: NaiveDate, serial: u32) -> Demographics {
    let sex = if rng.gen_bool(0.5) { Sex::Male } else { Sex::Female };
    let given = if sex == Sex::Male { MALE_GIVEN } else { FEMALE_GIVEN };
    let name = format!("{}{}", SURNAMES.choose(rng).unwrap_or(&"王"), given.choose(rng).unwrap_or(&"明"));
    let birth_year = as_of.year() - age as i32 - 1;
    let birth_date = NaiveDate::from_ymd_opt(birth_year, 1, 1).unwrap_or(as_of) + Duration::days(rng.gen_range(0..365));
    // Most adults carry a phone; children and the very old are reached through family.
    let phone = (rng.gen_bool(0.85))
        .then(|| format!("1{}{:09}", [3, 5, 8, 9][rng.gen_range(0..4)], rng.gen_range(0..1_000_000_000u64)));
    let house = rng.gen_range(1..=120);
    Demographics {
        name,
        sex,
        birth_date,
        national_id: rng.gen_bool(0.95).then(|| national_id(birth_date, sex, serial)),
        phone,
        address: Some(format!("{village}{}组{house}号", rng.gen_range(1..=8))),
        village: Some(village.to_string()),
    }
}

/// An 18-character resident identity number: area, birth date, a sequence whose last digit is odd
/// for men and even for women, and the MOD 11-2 check character.
pub fn national_id(birth: NaiveDate, sex: Sex, serial: u32) -> String {
    let sequence = (serial % 500) * 2 + u32::from(sex == Sex::Male);
    let body = format!("{AREA_CODE}{}{:03}", birth.format("%Y%m%d"), sequence % 1000);
    let sum: u32 = body.bytes().zip(ID_WEIGHTS).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    format!("{body}{}", ID_CHECK[(sum % 11) as usize] as char)
}

/// Body weight (kg) and height (cm) of an adult of `sex`.
pub fn build(rng: &mut StdRng, sex: Sex) -> (f64, f64) {
    let (height, bmi) = match sex {
        Sex::Male => (normal(rng, 166.0, 6.0), normal(rng, 24.0, 3.0)),
        _ => (normal(rng, 155.0, 5.5), normal(rng, 23.5, 3.2)),
    };
    let height = height.clamp(135.0, 195.0);
    let weight = (bmi.clamp(16.0, 38.0) * (height / 100.0).powi(2)).clamp(30.0, 150.0);
    ((weight * 10.0).round() / 10.0, height.round())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn identity_numbers_carry_the_published_check_character() {
        // The worked example of GB 11643-1999: 11010519491231002X.
        let body = "11010519491231002";
        let sum: u32 = body.bytes().zip(ID_WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
        assert_eq!(ID_CHECK[(sum % 11) as usize], b'X');
        let id = national_id(NaiveDate::from_ymd_opt(1956, 3, 7).unwrap(), Sex::Female, 17);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("43072519560307"));
        assert_eq!((id.as_bytes()[16] - b'0') % 2, 0, "women have an even sequence digit: {id}");
    }

    #[test]
    fn the_village_is_old() {
        let mut rng = StdRng::seed_from_u64(3);
        let ages: Vec<u32> = (0..20_000).map(|_| draw_age(&mut rng)).collect();
        let over_60 = ages.iter().filter(|&&a| a >= 60).count() as f64 / ages.len() as f64;
        assert!((0.31..0.37).contains(&over_60), "{over_60}");
        assert!(ages.iter().all(|&a| a <= 92));
    }
}
