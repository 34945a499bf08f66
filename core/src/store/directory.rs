//! The consortium directory a relay keeps: organizations (a tree by `part_of`), practitioners
//! with roles, family-doctor teams, and the devices enrolled with one-time codes.
//!
//! A device's scope follows from here (see `scope.rs`): the records contracted to its
//! practitioner's teams and the records referred to its organization. Every change to the
//! directory that can move a scope re-derives it in the same transaction.

use super::scope::{referral_grace_ms, refresh_device_scope};
use super::{Inner, Store};
use crate::time::Millis;
use crate::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The code stored and shown (`village_clinic`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code),+
                }
            }

            /// Parses a code.
            pub fn parse(code: &str) -> Result<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == code).ok_or_else(|| {
                    let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    Error::invalid($field, format!("{code:?} is not one of {}", known.join(", ")))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use code_enum;

code_enum!(
    /// The kinds of organization in a medical consortium (医联体).
    OrganizationKind, "organization.kind" {
        /// A tertiary (third-level) hospital.
        TertiaryHospital = "tertiary_hospital",
        /// A county hospital (the consortium's lead, usually).
        CountyHospital = "county_hospital",
        /// A township health centre (乡镇卫生院).
        TownshipHealthCentre = "township_health_centre",
        /// An urban community health centre.
        CommunityHealthCentre = "community_health_centre",
        /// A community joint ward run with a hospital.
        CommunityJointWard = "community_joint_ward",
        /// A village clinic (村卫生室).
        VillageClinic = "village_clinic",
    }
);

code_enum!(
    /// What a practitioner does.
    PractitionerRole, "practitioner.role" {
        /// Family doctor (家庭医生), leads or belongs to a team.
        FamilyDoctor = "family_doctor",
        /// Nurse.
        Nurse = "nurse",
        /// Public-health worker.
        PublicHealth = "public_health",
        /// Hospital specialist.
        Specialist = "specialist",
        /// A hospital's referral desk.
        ReferralDesk = "referral_desk",
    }
);

code_enum!(
    /// What kind of device enrolls.
    DeviceKind, "device.kind" {
        /// A practitioner's phone or tablet: may push only the changes it authored; sees its scope.
        Phone = "phone",
        /// An edge hub (a township relay): forwards the changes of the phones behind it.
        Hub = "hub",
    }
);

/// An organization of the consortium.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Organization {
    /// Id (`shiqiao-clinic`).
    pub id: String,
    /// Display name (`石桥村卫生室`).
    pub name: String,
    /// Kind.
    pub kind: OrganizationKind,
    /// The organization it belongs to (a village clinic to its township centre).
    pub part_of: Option<String>,
}

/// A practitioner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Practitioner {
    /// Id (`dr-wang`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: PractitionerRole,
    /// The organization they work for.
    pub organization_id: String,
}

/// A family-doctor team (家庭医生团队): residents sign contracts with a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    /// Id (`shiqiao-team-1`).
    pub id: String,
    /// Name.
    pub name: String,
    /// The organization that runs it.
    pub organization_id: String,
    /// Practitioner ids.
    pub members: Vec<String>,
}

/// An enrolled device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// Its peer id in the sync protocol.
    pub device_id: String,
    /// Its Ed25519 public key (what its TLS certificate carries and its changes are signed with).
    pub public_key: [u8; 32],
    /// Who uses it.
    pub practitioner_id: String,
    /// Where.
    pub organization_id: String,
    /// Phone or hub.
    pub kind: DeviceKind,
    /// When it enrolled (ms).
    pub enrolled_at: Millis,
    /// When it was revoked (ms), if it was.
    pub revoked_at: Option<Millis>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
}

/// A one-time enrollment code, as issued (the plain code is shown once; only its hash is kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentCode {
    /// The code to type or scan (`7KQ2-M9XD-...`).
    pub code: String,
    /// The practitioner the device will belong to.
    pub practitioner_id: String,
    /// The organization it will work for.
    pub organization_id: String,
    /// Phone or hub.
    pub kind: DeviceKind,
    /// When it stops working (ms).
    pub expires_at: Millis,
}

/// What the relay knows of the holder of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceAccess {
    /// Enrolled and in good standing.
    Enrolled(Device),
    /// Enrolled, then revoked: refused.
    Revoked(Device),
    /// Never enrolled: may only present an enrollment code.
    Unknown,
}

/// An enrollment code as stored.
struct IssuedCode {
    practitioner_id: String,
    organization_id: String,
    kind: String,
    expires_at: Millis,
    used_at: Option<Millis>,
    used_by: Option<String>,
}

/// How long an enrollment code works unless the admin says otherwise.
pub const DEFAULT_CODE_VALIDITY: Duration = Duration::from_secs(72 * 3600);

/// Crockford's base32 alphabet: no I, L, O, U, so a code read aloud or typed is unambiguous.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 20 symbols of 5 bits: 100 random bits.
const CODE_SYMBOLS: usize = 20;

/// SHA-256 of a secret (an enrollment code, an API token) after normalizing how it was typed.
pub(crate) fn secret_hash(secret: &str) -> Vec<u8> {
    let normalized: String = secret
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    Sha256::digest(normalized.as_bytes()).to_vec()
}

/// A random code in groups of four (`7KQ2-M9XD-4HTB-0WZE-RC3N`).
fn random_code(rng: &mut impl rand::Rng) -> String {
    let symbols: Vec<char> =
        (0..CODE_SYMBOLS).map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char).collect();
    symbols.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// An id an operator chose: short, printable, no spaces (it appears in logs, URLs and records).
/// Checks a device id as enrollment will (1..=64 of `a-z A-Z 0-9 - _ . :`), so a phone can say
/// what is wrong before it asks the relay.
pub fn check_device_id(id: &str) -> Result<()> {
    check_id("device.id", id)
}

fn check_id(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok { Ok(()) } else { Err(Error::invalid(field, format!("{id:?} must be 1..=64 of a-z A-Z 0-9 - _ . :"))) }
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid(field, "must be 1..=200 characters"));
    }
    Ok(())
}

fn row_exists(conn: &Connection, table: &str, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(&format!("SELECT 1 FROM {table} WHERE id = ?1"))?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn require(conn: &Connection, table: &str, what: &'static str, id: &str) -> Result<()> {
    if row_exists(conn, table, id)? { Ok(()) } else { Err(Error::NotFound { what, id: id.to_string() }) }
}

fn insert_unique(
    conn: &Connection,
    what: &'static str,
    id: &str,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<()> {
    match conn.prepare_cached(sql)?.execute(args) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(Error::AlreadyExists { what, id: id.to_string() })
        }
        Err(e) => Err(e.into()),
    }
}

const DEVICE_COLUMNS: &str =
    "device_id, public_key, practitioner_id, organization_id, kind, enrolled_at, revoked_at, revoke_reason";

/// A device row: the device with its raw key and kind, checked by [`devices_where`].
fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Device, Vec<u8>, String)> {
    Ok((
        Device {
            device_id: r.get(0)?,
            public_key: [0; 32],
            practitioner_id: r.get(2)?,
            organization_id: r.get(3)?,
            kind: DeviceKind::Phone,
            enrolled_at: r.get(5)?,
            revoked_at: r.get(6)?,
            revoke_reason: r.get(7)?,
        },
        r.get(1)?,
        r.get(4)?,
    ))
}

fn devices_where(conn: &Connection, filter: &str, args: impl rusqlite::Params) -> Result<Vec<Device>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE {filter} ORDER BY device_id"))?;
    let rows = stmt.query_map(args, device_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (mut device, key, kind) = row?;
        device.public_key = key.as_slice().try_into().map_err(|_| Error::CorruptDocument {
            doc_id: "(devices)".into(),
            reason: format!("device {} has a key of {} bytes", device.device_id, key.len()),
        })?;
        device.kind = DeviceKind::parse(&kind)?;
        out.push(device);
    }
    Ok(out)
}

/// Whether this store keeps a directory at all (a relay with enrolled devices); phones do not.
pub(crate) fn has_devices(conn: &Connection) -> Result<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM devices LIMIT 1")?.query_row([], |_| Ok(())).optional()?.is_some())
}

/// The key a device must author its changes with, when it may push only its own (a phone).
pub(crate) fn own_changes_only(conn: &Connection, device: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT public_key FROM devices WHERE device_id = ?1 AND kind = 'phone'")?
        .query_row([device], |r| r.get(0))
        .optional()?)
}

impl Inner {
    /// Re-derives the scope of every device of `practitioner` (team membership moved).
    fn refresh_practitioner_devices(&self, conn: &Connection, practitioner: &str) -> Result<usize> {
        let grace = referral_grace_ms(conn)?;
        let mut changed = 0;
        for device in devices_where(conn, "practitioner_id = ?1", [practitioner])? {
            changed += refresh_device_scope(conn, &device.device_id, self.now(), grace)?;
        }
        Ok(changed)
    }
}

impl Store {
    /// The key of enrolled phone `device` (the only author whose changes it may push), or `None`
    /// when it is not an enrolled phone (an edge hub, or unknown here).
    pub fn phone_key(&self, device: &str) -> Result<Option<Vec<u8>>> {
        own_changes_only(&self.lock().conn, device)
    }

    /// Adds an organization; its `part_of` must already exist.
    pub fn add_organization(&self, org: &Organization) -> Result<()> {
        check_id("organization.id", &org.id)?;
        check_name("organization.name", &org.name)?;
        let inner = self.lock();
        if let Some(parent) = &org.part_of {
            require(&inner.conn, "organizations", "organization", parent)?;
        }
        insert_unique(
            &inner.conn,
            "organization",
            &org.id,
            "INSERT INTO organizations (id, name, kind, part_of, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![org.id, org.name, org.kind.as_str(), org.part_of, inner.now()],
        )
    }

    /// Every organization, parents before the organizations that are part of them.
    pub fn organizations(&self) -> Result<Vec<Organization>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "WITH RECURSIVE tree(id, depth) AS (
                 SELECT id, 0 FROM organizations WHERE part_of IS NULL
                 UNION ALL SELECT o.id, t.depth + 1 FROM organizations o JOIN tree t ON o.part_of = t.id)
             SELECT o.id, o.name, o.kind, o.part_of FROM organizations o JOIN tree USING (id) ORDER BY depth, o.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, kind, part_of) = row?;
            out.push(Organization { id, name, kind: OrganizationKind::parse(&kind)?, part_of });
        }
        Ok(out)
    }

    /// Adds a practitioner to an existing organization.
    pub fn add_practitioner(&self, practitioner: &Practitioner) -> Result<()> {
        check_id("practitioner.id", &practitioner.id)?;
        check_name("practitioner.name", &practitioner.name)?;
        let inner = self.lock();
        require(&inner.conn, "organizations", "organization", &practitioner.organization_id)?;
        insert_unique(
            &inner.conn,
            "practitioner",
            &practitioner.id,
            "INSERT INTO practitioners (id, name, role, organization_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                practitioner.id,
                practitioner.name,
                practitioner.role.as_str(),
                practitioner.organization_id,
                inner.now()
            ],
        )
    }

    /// Every practitioner, by id.
    pub fn practitioners(&self) -> Result<Vec<Practitioner>> {
        let inner = self.lock();
        let mut stmt =
            inner.conn.prepare_cached("SELECT id, name, role, organization_id FROM practitioners ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, role, organization_id) = row?;
            out.push(Practitioner { id, name, role: PractitionerRole::parse(&role)?, organization_id });
        }
        Ok(out)
    }

    /// Adds a family-doctor team with its members; their devices' scopes gain the team's
    /// contracted residents at once.
    pub fn add_team(&self, team: &Team) -> Result<()> {
        check_id("team.id", &team.id)?;
        check_name("team.name", &team.name)?;
        let inner = self.lock();
        require(&inner.conn, "organizations", "organization", &team.organization_id)?;
        for member in &team.members {
            require(&inner.conn, "practitioners", "practitioner", member)?;
        }
        let tx = inner.conn.unchecked_transaction()?;
        insert_unique(
            &tx,
            "team",
            &team.id,
            "INSERT INTO teams (id, name, organization_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![team.id, team.name, team.organization_id, inner.now()],
        )?;
        let mut changed = 0;
        for member in &team.members {
            tx.prepare_cached("INSERT OR IGNORE INTO team_members (team_id, practitioner_id) VALUES (?1, ?2)")?
                .execute(params![team.id, member])?;
            changed += inner.refresh_practitioner_devices(&tx, member)?;
        }
        tx.commit()?;
        if changed > 0 {
            inner.notify(false, super::Committed::Scope);
        }
        Ok(())
    }

    /// Adds (`member = true`) or removes a practitioner from a team. Their devices gain the
    /// team's residents, or are told to purge the ones they no longer care for.
    pub fn set_team_member(&self, team: &str, practitioner: &str, member: bool) -> Result<()> {
        let inner = self.lock();
        require(&inner.conn, "teams", "team", team)?;
        require(&inner.conn, "practitioners", "practitioner", practitioner)?;
        let tx = inner.conn.unchecked_transaction()?;
        let sql = if member {
            "INSERT OR IGNORE INTO team_members (team_id, practitioner_id) VALUES (?1, ?2)"
        } else {
            "DELETE FROM team_members WHERE team_id = ?1 AND practitioner_id = ?2"
        };
        tx.prepare_cached(sql)?.execute(params![team, practitioner])?;
        let changed = inner.refresh_practitioner_devices(&tx, practitioner)?;
        tx.commit()?;
        if changed > 0 {
            inner.notify(false, super::Committed::Scope);
        }
        Ok(())
    }

    /// Every team with its members.
    pub fn teams(&self) -> Result<Vec<Team>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT t.id, t.name, t.organization_id, coalesce(group_concat(m.practitioner_id, ','), '')
             FROM teams t LEFT JOIN team_members m ON m.team_id = t.id GROUP BY t.id ORDER BY t.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let members: String = r.get(3)?;
            Ok(Team {
                id: r.get(0)?,
                name: r.get(1)?,
                organization_id: r.get(2)?,
                members: members.split(',').filter(|m| !m.is_empty()).map(str::to_string).collect(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Issues a one-time enrollment code for a device of `practitioner` at `organization` (their
    /// own organization when `None`), valid for `valid_for`. Only the code's hash is kept: the
    /// returned code is the one time it can be read.
    pub fn issue_enrollment_code(
        &self,
        practitioner: &str,
        organization: Option<&str>,
        kind: DeviceKind,
        valid_for: Duration,
        issued_by: &str,
    ) -> Result<EnrollmentCode> {
        if valid_for.is_zero() || valid_for > Duration::from_secs(30 * 24 * 3600) {
            return Err(Error::invalid("enrollment_code.valid_for", "must be more than 0 and at most 30 days"));
        }
        let mut inner = self.lock();
        let home: Option<String> = inner
            .conn
            .prepare_cached("SELECT organization_id FROM practitioners WHERE id = ?1")?
            .query_row([practitioner], |r| r.get(0))
            .optional()?;
        let Some(home) = home else {
            return Err(Error::NotFound { what: "practitioner", id: practitioner.to_string() });
        };
        let organization = organization.map(str::to_string).unwrap_or(home);
        require(&inner.conn, "organizations", "organization", &organization)?;
        let code = random_code(&mut inner.rng);
        let issued_at = inner.now();
        let expires_at = issued_at.saturating_add(valid_for.as_millis().min(i64::MAX as u128) as i64);
        inner.conn.prepare_cached("INSERT INTO enrollment_codes (code_hash, practitioner_id, organization_id, kind, issued_by, issued_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![secret_hash(&code), practitioner, organization, kind.as_str(), issued_by, issued_at, expires_at],
        )?;
        Ok(EnrollmentCode {
            code,
            practitioner_id: practitioner.to_string(),
            organization_id: organization,
            kind,
            expires_at,
        })
    }

    /// Enrolls the device holding `public_key` as `device_id` with a code (used up by this call),
    /// at time `now`. Refused, with the reason, when the code is unknown (mistyped or guessed),
    /// already used, or expired, or when the id or the key is enrolled already. The device's
    /// scope is derived at once.
    pub fn enroll_device(&self, code: &str, device_id: &str, public_key: [u8; 32], now: Millis) -> Result<Device> {
        check_device_id(device_id)?;
        let inner = self.lock();
        let tx = inner.conn.unchecked_transaction()?;
        let found: Option<IssuedCode> = tx
            .prepare_cached(
                "SELECT practitioner_id, organization_id, kind, expires_at, used_at, used_by
                 FROM enrollment_codes WHERE code_hash = ?1",
            )?
            .query_row([secret_hash(code)], |r| {
                Ok(IssuedCode {
                    practitioner_id: r.get(0)?,
                    organization_id: r.get(1)?,
                    kind: r.get(2)?,
                    expires_at: r.get(3)?,
                    used_at: r.get(4)?,
                    used_by: r.get(5)?,
                })
            })
            .optional()?;
        let forbidden = |reason: String| Err(Error::Forbidden { reason });
        let Some(IssuedCode { practitioner_id, organization_id, kind, expires_at, used_at, used_by }) = found else {
            return forbidden("enrollment code is not valid (mistyped, or never issued)".into());
        };
        if let Some(used_at) = used_at {
            return forbidden(format!(
                "enrollment code was already used (by device {} at {})",
                used_by.unwrap_or_default(),
                crate::time::format_ms(used_at)
            ));
        }
        if now >= expires_at {
            return forbidden(format!("enrollment code expired at {}", crate::time::format_ms(expires_at)));
        }
        let existing: Option<String> = tx
            .prepare_cached("SELECT device_id FROM devices WHERE public_key = ?1")?
            .query_row([public_key.to_vec()], |r| r.get(0))
            .optional()?;
        if let Some(existing) = existing {
            return forbidden(format!("this device key is already enrolled as {existing}"));
        }
        insert_unique(
            &tx,
            "device",
            device_id,
            "INSERT INTO devices (device_id, public_key, practitioner_id, organization_id, kind, enrolled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![device_id, public_key.to_vec(), practitioner_id, organization_id, kind, now],
        )?;
        tx.prepare_cached("UPDATE enrollment_codes SET used_at = ?2, used_by = ?3 WHERE code_hash = ?1")?
            .execute(params![secret_hash(code), now, device_id])?;
        refresh_device_scope(&tx, device_id, now, referral_grace_ms(&tx)?)?;
        tx.commit()?;
        inner.notify(false, super::Committed::Scope);
        let device = devices_where(&inner.conn, "device_id = ?1", [device_id])?.into_iter().next();
        device.ok_or_else(|| Error::NotFound { what: "device", id: device_id.to_string() })
    }

    /// What is known of the holder of `public_key` (from its TLS certificate).
    pub fn device_access(&self, public_key: &[u8; 32]) -> Result<DeviceAccess> {
        let inner = self.lock();
        Ok(match devices_where(&inner.conn, "public_key = ?1", [public_key.to_vec()])?.into_iter().next() {
            Some(device) if device.revoked_at.is_some() => DeviceAccess::Revoked(device),
            Some(device) => DeviceAccess::Enrolled(device),
            None => DeviceAccess::Unknown,
        })
    }

    /// Every enrolled device (revoked ones included), by id.
    pub fn devices(&self) -> Result<Vec<Device>> {
        devices_where(&self.lock().conn, "1 = 1", [])
    }

    /// Revokes a device: it is refused from now on (a relay closes its live connection within
    /// seconds); the changes it signed before stay valid history.
    pub fn revoke_device(&self, device_id: &str, by: &str, reason: &str) -> Result<Device> {
        let inner = self.lock();
        let updated = inner
            .conn
            .prepare_cached(
                "UPDATE devices SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4
             WHERE device_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![device_id, inner.now(), by, reason])?;
        let device = devices_where(&inner.conn, "device_id = ?1", [device_id])?.into_iter().next();
        let device = device.ok_or_else(|| Error::NotFound { what: "device", id: device_id.to_string() })?;
        if updated > 0 {
            tracing::warn!(device = device_id, by, reason, "device revoked");
            inner.notify(false, super::Committed::Scope);
        }
        Ok(device)
    }

    /// How many devices have been revoked (moves whenever one is): what a relay polls to close
    /// revoked devices' connections when the revocation came from another process.
    pub fn revocation_count(&self) -> Result<u64> {
        let inner = self.lock();
        let n: i64 = inner
            .conn
            .prepare_cached("SELECT count(*) FROM devices WHERE revoked_at IS NOT NULL")?
            .query_row([], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    fn directory() -> Store {
        let store = Store::open_in_memory(StoreOptions::default()).unwrap();
        store
            .add_organization(&Organization {
                id: "county".into(),
                name: "县人民医院".into(),
                kind: OrganizationKind::CountyHospital,
                part_of: None,
            })
            .unwrap();
        store
            .add_organization(&Organization {
                id: "shiqiao".into(),
                name: "石桥村卫生室".into(),
                kind: OrganizationKind::VillageClinic,
                part_of: Some("county".into()),
            })
            .unwrap();
        store
            .add_practitioner(&Practitioner {
                id: "dr-wang".into(),
                name: "王医生".into(),
                role: PractitionerRole::FamilyDoctor,
                organization_id: "shiqiao".into(),
            })
            .unwrap();
        store
    }

    #[test]
    fn the_directory_checks_what_it_refers_to() {
        let store = directory();
        let orphan = Organization {
            id: "x".into(),
            name: "x".into(),
            kind: OrganizationKind::VillageClinic,
            part_of: Some("nowhere".into()),
        };
        assert!(matches!(store.add_organization(&orphan), Err(Error::NotFound { what: "organization", .. })));
        let again = &store.organizations().unwrap()[1];
        assert_eq!(again.part_of.as_deref(), Some("county"));
        assert!(matches!(store.add_organization(again), Err(Error::AlreadyExists { .. })));
        let team = Team {
            id: "t1".into(),
            name: "一队".into(),
            organization_id: "shiqiao".into(),
            members: vec!["dr-nobody".into()],
        };
        assert!(matches!(store.add_team(&team), Err(Error::NotFound { what: "practitioner", .. })));
        let err = OrganizationKind::parse("castle").unwrap_err().to_string();
        assert!(err.starts_with("organization.kind: \"castle\" is not one of"), "{err}");
    }

    #[test]
    fn an_enrollment_code_works_once_and_until_it_expires() {
        let store = directory();
        let code = store
            .issue_enrollment_code("dr-wang", None, DeviceKind::Phone, Duration::from_secs(3600), "admin")
            .unwrap();
        assert_eq!(code.code.len(), 24);
        assert_eq!(code.organization_id, "shiqiao");
        let now = crate::time::now_ms();
        // Typed in lower case with spaces: still the same code.
        let typed = code.code.to_lowercase().replace('-', " ");
        let device = store.enroll_device(&typed, "wang-phone", [7; 32], now).unwrap();
        assert_eq!(device.practitioner_id, "dr-wang");
        let reused = store.enroll_device(&code.code, "thief-phone", [8; 32], now).unwrap_err().to_string();
        assert!(reused.contains("already used (by device wang-phone"), "{reused}");
        let guessed = store.enroll_device("AAAA-BBBB-CCCC-DDDD-EEEE", "x", [9; 32], now).unwrap_err().to_string();
        assert!(guessed.contains("not valid"), "{guessed}");

        let late =
            store.issue_enrollment_code("dr-wang", None, DeviceKind::Phone, Duration::from_secs(60), "admin").unwrap();
        let expired = store.enroll_device(&late.code, "late", [10; 32], late.expires_at).unwrap_err().to_string();
        assert!(expired.contains("expired at"), "{expired}");
        // A failed attempt does not use the code up.
        assert!(store.enroll_device(&late.code, "late", [10; 32], now).is_ok());
        assert!(matches!(store.device_access(&[10; 32]).unwrap(), DeviceAccess::Enrolled(_)));
        assert_eq!(store.device_access(&[11; 32]).unwrap(), DeviceAccess::Unknown);

        store.revoke_device("late", "admin", "phone lost").unwrap();
        assert!(matches!(store.device_access(&[10; 32]).unwrap(), DeviceAccess::Revoked(_)));
        assert_eq!(store.revocation_count().unwrap(), 1);
    }
}
