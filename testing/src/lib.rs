//! The test kit: a consortium's directory declared once and entered into a relay's store. The
//! demo, core's, the relay's and the whole-system tests, the simulation and the benchmarks all
//! build their consortium with [`Consortium`]; nothing else calls the directory's `add_*`.
//!
//! ```
//! use yilian_core::{OrganizationKind, Store, StoreOptions};
//! use yilian_testing::Consortium;
//!
//! let relay = Store::open_in_memory(StoreOptions::default()).unwrap();
//! Consortium::new()
//!     .organization("county", "县人民医院", OrganizationKind::CountyHospital, None)
//!     .organization("shiqiao", "石桥村卫生室", OrganizationKind::VillageClinic, Some("county"))
//!     .family_doctor("dr-wang", "王医生", "shiqiao")
//!     .team("team-shiqiao", "石桥一队", "shiqiao", &["dr-wang"])
//!     .enter(&relay)
//!     .unwrap();
//! assert_eq!(relay.teams().unwrap()[0].members, vec!["dr-wang".to_string()]);
//! ```

pub mod clock;

use yilian_core::{Organization, OrganizationKind, Practitioner, PractitionerRole, Result, Store, Team};

/// A consortium's directory: organizations (parents before the organizations part of them),
/// practitioners, and family-doctor teams, entered in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consortium {
    /// The organizations, in the order they are entered.
    pub organizations: Vec<Organization>,
    /// The practitioners.
    pub practitioners: Vec<Practitioner>,
    /// The family-doctor teams.
    pub teams: Vec<Team>,
}

impl Consortium {
    /// An empty directory.
    pub fn new() -> Consortium {
        Consortium::default()
    }

    /// Adds an organization, part of `part_of` (declared before it).
    pub fn organization(mut self, id: &str, name: &str, kind: OrganizationKind, part_of: Option<&str>) -> Self {
        self.organizations.push(Organization {
            id: id.into(),
            name: name.into(),
            kind,
            part_of: part_of.map(str::to_string),
        });
        self
    }

    /// Adds a practitioner working at `organization`.
    pub fn practitioner(mut self, id: &str, name: &str, role: PractitionerRole, organization: &str) -> Self {
        self.practitioners.push(Practitioner {
            id: id.into(),
            name: name.into(),
            role,
            organization_id: organization.into(),
        });
        self
    }

    /// Adds a family doctor working at `organization`.
    pub fn family_doctor(self, id: &str, name: &str, organization: &str) -> Self {
        self.practitioner(id, name, PractitionerRole::FamilyDoctor, organization)
    }

    /// Adds a referral desk's practitioner at `organization` (a hospital).
    pub fn referral_desk(self, id: &str, name: &str, organization: &str) -> Self {
        self.practitioner(id, name, PractitionerRole::ReferralDesk, organization)
    }

    /// Adds a family-doctor team of `organization` with its `members` (declared before it).
    pub fn team(mut self, id: &str, name: &str, organization: &str, members: &[&str]) -> Self {
        self.teams.push(Team {
            id: id.into(),
            name: name.into(),
            organization_id: organization.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        });
        self
    }

    /// Enters the directory into `relay`'s store: organizations, practitioners, then teams.
    pub fn enter(&self, relay: &Store) -> Result<()> {
        for organization in &self.organizations {
            relay.add_organization(organization)?;
        }
        for practitioner in &self.practitioners {
            relay.add_practitioner(practitioner)?;
        }
        for team in &self.teams {
            relay.add_team(team)?;
        }
        Ok(())
    }
}
