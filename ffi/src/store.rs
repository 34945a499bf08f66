//! The phone's store of patient records and the whole care API, as one object the app opens
//! once and shares between screens and threads.

use crate::error::{CareError, parse};
use crate::records::*;
use crate::runtime::{blocking, runtime};
use std::sync::Arc;
use yilian_core::{Store, StoreOptions};

/// The records on this phone. Open it once at app start (with the key from the Android Keystore
/// or the iOS Keychain) and share it; every call is safe from any thread or coroutine at once.
/// Each edit is durable when its call returns, and syncs through the [`crate::YilianSyncAgent`].
#[derive(uniffi::Object)]
pub struct YilianStore {
    pub(crate) store: Arc<Store>,
}

/// A handle on a background task (an observer): dropping it, or calling `cancel`, stops the task.
#[derive(uniffi::Object)]
pub struct TaskHandle {
    task: tokio::task::AbortHandle,
}

#[uniffi::export]
impl TaskHandle {
    /// Stops the task; the observer gets no more calls.
    pub fn cancel(&self) {
        self.task.abort();
    }
}

impl TaskHandle {
    pub(crate) fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) -> Arc<TaskHandle> {
        Arc::new(TaskHandle { task: runtime().spawn(work).abort_handle() })
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the app implements to hear that records changed, so an open screen can refresh.
#[uniffi::export(with_foreign)]
pub trait RecordsObserver: Send + Sync {
    /// Records changed on this phone: edited here (`local_edit`), arrived from the relay, or left
    /// the phone's scope. `patient_ids` lists the records with new changes; it may be empty when
    /// records only left the phone (reload any list on screen).
    fn on_records_changed(&self, patient_ids: Vec<String>, local_edit: bool);
}

impl YilianStore {
    /// Runs `work` on the store off the caller's thread.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, CareError> + Send + 'static,
    ) -> Result<T, CareError> {
        let store = self.store.clone();
        blocking(move || work(&store)).await
    }
}

#[uniffi::export]
impl YilianStore {
    /// Opens (creating if needed) the store at `path`. `encryption_key`: 32 bytes for encryption at
    /// rest (SQLCipher), or none for a plain database. A wrong key is `CareError.WrongKey`; a database written by a newer app is
    /// `CareError.NewerVersion` (update the app).
    #[uniffi::constructor]
    pub async fn open(path: String, encryption_key: Option<Vec<u8>>) -> Result<Arc<YilianStore>, CareError> {
        if let Some(key) = &encryption_key
            && key.len() != 32
        {
            return Err(CareError::Validation {
                field: "encryption_key".into(),
                reason: format!("must be 32 bytes, not {}", key.len()),
            });
        }
        blocking(move || {
            let options = StoreOptions { encryption_key, ..StoreOptions::default() };
            Ok(Arc::new(YilianStore { store: Arc::new(Store::open(&path, options)?) }))
        })
        .await
    }

    /// This phone's public key (hex): what the relay's administrator sees at enrollment.
    pub fn device_public_key(&self) -> String {
        self.store.device_public_key()
    }

    /// Registers a resident; returns the new record's id.
    pub async fn create_patient(&self, patient: NewPatient) -> Result<String, CareError> {
        self.with(move |s| Ok(s.create_patient(patient.into_core()?)?.to_string())).await
    }

    /// Changes a resident's demographics (only the fields given).
    pub async fn update_demographics(&self, patient_id: String, update: DemographicsUpdate) -> Result<(), CareError> {
        self.with(move |s| Ok(s.update_demographics(parse("patient_id", &patient_id)?, update.into_core()?)?)).await
    }

    /// A resident's whole record.
    pub async fn patient(&self, patient_id: String) -> Result<PatientRecord, CareError> {
        self.with(move |s| Ok(s.patient(parse("patient_id", &patient_id)?)?.into())).await
    }

    /// The residents contracted to a family doctor, by name.
    pub async fn patients_of(&self, practitioner_id: String) -> Result<Vec<PatientSummary>, CareError> {
        self.with(move |s| Ok(all(s.patients_of(&practitioner_id)?))).await
    }

    /// Every record on this phone.
    pub async fn patient_ids(&self) -> Result<Vec<String>, CareError> {
        self.with(|s| Ok(s.patient_ids()?.into_iter().map(|id| id.to_string()).collect())).await
    }

    /// Signs a family-doctor contract; returns its id.
    pub async fn sign_contract(&self, patient_id: String, contract: NewContract) -> Result<String, CareError> {
        self.with(move |s| Ok(s.sign_contract(parse("patient_id", &patient_id)?, contract.into_core()?)?.to_string()))
            .await
    }

    /// Terminates a contract before its end.
    pub async fn terminate_contract(&self, patient_id: String, contract_id: String) -> Result<(), CareError> {
        self.with(move |s| {
            Ok(s.terminate_contract(parse("patient_id", &patient_id)?, parse("contract_id", &contract_id)?)?)
        })
        .await
    }

    /// Adds a diagnosis (enrolling the resident in its program); returns its id.
    pub async fn add_condition(&self, patient_id: String, condition: NewCondition) -> Result<String, CareError> {
        self.with(move |s| Ok(s.add_condition(parse("patient_id", &patient_id)?, condition.into_core()?)?.to_string()))
            .await
    }

    /// Records a visit; every vital is range-checked. Returns the visit's id.
    pub async fn record_visit(&self, patient_id: String, visit: NewVisit) -> Result<String, CareError> {
        self.with(move |s| Ok(s.record_visit(parse("patient_id", &patient_id)?, visit.into())?.to_string())).await
    }

    /// Corrects one field of a recorded visit, keeping the history; returns the amendment's id.
    pub async fn amend_visit(
        &self,
        patient_id: String,
        visit_id: String,
        amendment: VisitAmendment,
    ) -> Result<String, CareError> {
        self.with(move |s| {
            let id = s.amend_visit(
                parse("patient_id", &patient_id)?,
                parse("visit_id", &visit_id)?,
                amendment.into_core()?,
            )?;
            Ok(id.to_string())
        })
        .await
    }

    /// A resident's visits, oldest first.
    pub async fn visits(&self, patient_id: String) -> Result<Vec<Visit>, CareError> {
        self.with(move |s| Ok(all(s.visits(parse("patient_id", &patient_id)?)?))).await
    }

    /// Books a follow-up; returns its id.
    pub async fn schedule_follow_up(&self, patient_id: String, plan: NewFollowUpPlan) -> Result<String, CareError> {
        self.with(move |s| Ok(s.schedule_follow_up(parse("patient_id", &patient_id)?, plan.into_core()?)?.to_string()))
            .await
    }

    /// A family doctor's follow-ups due on or before `today` (`YYYY-MM-DD`), most overdue first.
    pub async fn due_follow_ups(&self, practitioner_id: String, today: String) -> Result<Vec<DueFollowUp>, CareError> {
        self.with(move |s| Ok(all(s.due_follow_ups(&practitioner_id, parse("today", &today)?)?))).await
    }

    /// Refers a resident up or down; returns the referral's id.
    pub async fn create_referral(&self, patient_id: String, referral: NewReferral) -> Result<String, CareError> {
        self.with(move |s| Ok(s.create_referral(parse("patient_id", &patient_id)?, referral.into_core()?)?.to_string()))
            .await
    }

    /// Adds a step to a referral (received, accepted, rejected, completed, ...); a step the
    /// workflow does not allow from the current status is `CareError.Transition`.
    pub async fn add_referral_event(&self, referral_id: String, event: NewReferralEvent) -> Result<String, CareError> {
        self.with(move |s| Ok(s.add_referral_event(parse("referral_id", &referral_id)?, event.into())?.to_string()))
            .await
    }

    /// A referral's current status.
    pub async fn referral_status(&self, referral_id: String) -> Result<TaskStatus, CareError> {
        self.with(move |s| Ok(s.referral_status(parse("referral_id", &referral_id)?)?.status.into())).await
    }

    /// Referrals from or to an organization that are not finished, oldest first.
    pub async fn open_referrals(&self, organization_id: String) -> Result<Vec<ReferralSummary>, CareError> {
        self.with(move |s| Ok(all(s.open_referrals(&organization_id)?))).await
    }

    /// What a resident's record suggests referring, with reasons.
    pub async fn referral_suggestions(&self, patient_id: String) -> Result<Vec<ReferralSuggestion>, CareError> {
        self.with(move |s| Ok(all(s.referral_suggestions(parse("patient_id", &patient_id)?)?))).await
    }

    /// A resident's record as JSON (for sharing or printing).
    pub async fn export_json(&self, patient_id: String) -> Result<String, CareError> {
        self.with(move |s| Ok(s.export_json(parse("patient_id", &patient_id)?)?.to_string())).await
    }

    /// Calls `observer` whenever records change (edits here, changes from the relay, records
    /// leaving the phone) until the handle is dropped or cancelled.
    pub fn observe_records(&self, observer: Arc<dyn RecordsObserver>) -> Result<Arc<TaskHandle>, CareError> {
        let store = self.store.clone();
        let mut events = store.watch();
        let mut seen = store.last_seq()?;
        let mut local_edits = events.borrow_and_update().local_edits;
        Ok(TaskHandle::spawn(async move {
            while events.changed().await.is_ok() {
                let now = events.borrow_and_update().local_edits;
                let local_edit = now != local_edits;
                local_edits = now;
                let store = store.clone();
                let after = seen;
                let changed = blocking(move || store.changed_records_since(after).map_err(CareError::from)).await;
                match changed {
                    Ok((ids, newest)) => {
                        seen = newest;
                        observer.on_records_changed(ids.into_iter().map(|id| id.to_string()).collect(), local_edit);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list changed records"),
                }
            }
        }))
    }
}

/// Panics inside a store call on purpose, to prove the panic comes back as `CareError.Internal`
/// and the store keeps working (built only with the `test-hooks` feature, for the app tests).
#[cfg(feature = "test-hooks")]
#[uniffi::export]
pub async fn panic_inside_call(message: String) -> Result<(), CareError> {
    blocking(move || -> Result<(), CareError> { panic!("{message}") }).await
}
