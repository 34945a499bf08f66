//! The trust layer over real QUIC with mutual TLS: who may connect (enrolled, not revoked, holding
//! the key its certificate names), enrollment codes that work once and expire, a revoked device
//! cut off while connected, three village teams that never receive each other's residents, and a
//! county desk that holds a referred record only while the referral is open (and for the grace
//! period after).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use anyhow::{Result, bail, ensure};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use yilian_core::identity::DeviceKey;
use yilian_core::model::{NewContract, TaskStatus};
use yilian_core::net::{ALPN, SessionOptions, connect, device_certificate};
use yilian_core::time::{now_ms, today};
use yilian_core::{DeviceKind, Error, OrganizationKind, PatientId, Store};
use yilian_relay::Relay;
use yilian_testing::Consortium;
use yilian_tests::lab::{Phone, STEP, lab_code, open_store, start_relay};
use yilian_tests::{COUNTY, desk_event, follow_up_visit, resident, upward_referral};

const GRACE: Duration = Duration::from_secs(24 * 3600);
const VILLAGES: [&str; 3] = ["a", "b", "c"];

fn forbidden(result: yilian_core::Result<impl std::fmt::Debug>, expect: &str) -> Result<String> {
    match result {
        Err(Error::Forbidden { reason }) if reason.contains(expect) => Ok(reason),
        other => bail!("expected a refusal naming {expect:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_enrolled_devices_with_their_own_key_and_a_fresh_code_get_in() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let stop = CancellationToken::new();

    // Never enrolled: refused, told why.
    let stranger = Phone::new("stranger", open_store(dir.path().join("s.db"))?, relay.fingerprint)?;
    stranger.store.create_patient(resident("陌生人"))?;
    let why = forbidden(stranger.try_sync(relay.addr, &SessionOptions::default(), &stop).await, "not enrolled")?;
    println!("unenrolled: {why}");
    ensure!(storage.patient_ids()?.is_empty(), "nothing of the stranger's was stored");

    // A code works once: replayed by another device, it is refused.
    let code = lab_code(&storage)?;
    let wang = Phone::new("wang", open_store(dir.path().join("w.db"))?, relay.fingerprint)?;
    let enrolled = wang.enroll(relay.addr, &code).await?;
    ensure!(enrolled.practitioner == "dr-wang" && enrolled.organization == "shiqiao-clinic", "{enrolled:?}");
    let why = forbidden(stranger.enroll(relay.addr, &code).await, "already used")?;
    println!("replayed code: {why}");
    // A guessed code, and an expired one.
    forbidden(stranger.enroll(relay.addr, "7KQ2-M9XD-4HTB-0WZE-RC3N").await, "not valid")?;
    let short = storage.issue_enrollment_code("dr-wang", None, DeviceKind::Phone, Duration::from_millis(1), "lab")?;
    while now_ms() < short.expires_at {
        tokio::task::yield_now().await; // the code's millisecond runs out
    }
    let why = forbidden(stranger.enroll(relay.addr, &short.code).await, "expired")?;
    println!("expired code: {why}");
    // Enrolled, it syncs.
    wang.store.create_patient(resident("刘桂兰"))?;
    wang.sync(relay.addr).await?;
    ensure!(storage.patient_ids()?.len() == 1);

    // The hello must name the device the certificate belongs to.
    let impostor = Phone::new("wang", stranger.store.clone(), relay.fingerprint)?;
    forbidden(impostor.try_sync(relay.addr, &SessionOptions::default(), &stop).await, "not enrolled")?;
    let liar = Phone::new("someone-else", wang.store.clone(), relay.fingerprint)?;
    let why =
        forbidden(liar.try_sync(relay.addr, &SessionOptions::default(), &stop).await, "certificate belongs to wang")?;
    println!("wrong hello: {why}");

    // A stolen certificate is useless without the key it carries: the handshake fails.
    let (stolen, _) = device_certificate(&wang.store.device_key())?;
    let endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
    let thief = stolen_certificate_client(stolen, &DeviceKey::generate())?;
    // The client's side of a TLS 1.3 handshake may complete before the relay has checked the
    // client's signature: the refusal then arrives as the connection's close.
    let refusal = match connect(&endpoint, &thief, relay.addr).await {
        Err(e) => e.to_string(),
        Ok((conn, _)) => tokio::time::timeout(STEP, conn.closed()).await?.to_string(),
    };
    println!("stolen certificate, other key: {refusal}");
    ensure!(refusal.contains("handshake failed") && refusal.contains("BadSignature"), "{refusal}");
    ensure!(storage.devices()?.len() == 1, "only wang's phone is known");

    relay.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_cut_off_while_connected_and_cannot_come_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let lost = Phone::join("lost-phone", open_store(dir.path().join("l.db"))?, &relay, &storage).await?;
    let p = lost.store.create_patient(resident("马秀珍"))?;
    lost.store.record_visit(p, follow_up_visit(1))?;
    lost.sync(relay.addr).await?;

    // A live session; the admin revokes the phone from another process (the CLI writes the
    // database): the relay notices by polling and closes the connection.
    let live = SessionOptions { live: true, cut_after_bytes: None };
    let stop = CancellationToken::new();
    let session = {
        let (lost, addr, stop) =
            (Phone::new("lost-phone", lost.store.clone(), relay.fingerprint)?, relay.addr, stop.clone());
        tokio::spawn(async move { lost.try_sync(addr, &live, &stop).await })
    };
    let mut events = storage.watch();
    events.borrow_and_update();
    // Wait until the live session is welcomed (the relay has read the device's hello).
    tokio::time::timeout(STEP, async {
        while storage.peer_cursor("lost-phone").map(|c| c.read_seq).unwrap_or(0) == 0 {
            events.changed().await.unwrap();
        }
    })
    .await?;
    let revoked_at = Instant::now();
    let reopened = open_store(dir.path().join("relay.db"))?; // what the CLI does
    reopened.revoke_device("lost-phone", "admin", "reported lost")?;
    let ended = tokio::time::timeout(STEP, session).await??;
    println!("live connection closed {} ms after the revocation", revoked_at.elapsed().as_millis());
    forbidden(ended, "revoked")?;

    // It cannot come back, and what it signed before stays valid history.
    lost.store.record_visit(p, follow_up_visit(2))?;
    let why = forbidden(lost.try_sync(relay.addr, &SessionOptions::default(), &stop).await, "reported lost")?;
    println!("reconnect: {why}");
    ensure!(storage.patient(p)?.visits.len() == 1, "the first visit stays; the second never arrived");
    relay.shutdown().await;
    Ok(())
}

/// The consortium of the scope tests: the county hospital and three village clinics, one team
/// each; the county's referral desk.
fn consortium(storage: &Store) -> Result<()> {
    storage.set_referral_grace(GRACE)?;
    let mut directory = Consortium::new()
        .organization(COUNTY, COUNTY, OrganizationKind::CountyHospital, None)
        .referral_desk("dr-desk", "dr-desk", COUNTY);
    for v in VILLAGES {
        let (clinic, doctor) = (format!("village-{v}"), format!("dr-{v}"));
        directory = directory
            .organization(&clinic, &clinic, OrganizationKind::VillageClinic, Some(COUNTY))
            .family_doctor(&doctor, &doctor, &clinic)
            .team(&format!("team-{v}"), &format!("team {v}"), &clinic, &[&doctor]);
    }
    directory.enter(storage)?;
    Ok(())
}

async fn enrolled_phone(
    name: &str,
    practitioner: &str,
    dir: &std::path::Path,
    relay: &Relay,
    storage: &Store,
) -> Result<Phone> {
    let phone = Phone::new(name, open_store(dir.join(format!("{name}.db")))?, relay.fingerprint)?;
    let code =
        storage.issue_enrollment_code(practitioner, None, DeviceKind::Phone, Duration::from_secs(600), "admin")?;
    phone.enroll(relay.addr, &code.code).await?;
    Ok(phone)
}

fn held(store: &Store) -> Result<BTreeSet<PatientId>> {
    Ok(store.patient_ids()?.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_see_only_their_residents_and_the_county_only_open_referrals() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    consortium(&storage)?;
    let relay = start_relay(&dir.path().join("relay"), storage.clone()).await?;
    let mut phones = BTreeMap::new();
    let mut residents: BTreeMap<&str, BTreeSet<PatientId>> = BTreeMap::new();
    for v in VILLAGES {
        let phone = enrolled_phone(&format!("phone-{v}"), &format!("dr-{v}"), dir.path(), &relay, &storage).await?;
        for i in 0..4 {
            let mut new = resident(&format!("{v}-{i}"));
            new.organization_id = format!("village-{v}");
            let p = phone.store.create_patient(new)?;
            phone.store.sign_contract(
                p,
                NewContract {
                    team_id: format!("team-{v}"),
                    practitioner_id: format!("dr-{v}"),
                    organization_id: format!("village-{v}"),
                    start: today(),
                    end: today() + chrono::Days::new(365),
                },
            )?;
            phone.store.record_visit(p, follow_up_visit(i))?;
            residents.entry(v).or_default().insert(p);
        }
        phones.insert(v, phone);
    }
    let desk = enrolled_phone("desk", "dr-desk", dir.path(), &relay, &storage).await?;
    let referred = *residents["a"].first().unwrap();
    let mut referral = upward_referral();
    referral.from_organization_id = "village-a".into();
    let referral = phones["a"].store.create_referral(referred, referral)?;
    for _ in 0..2 {
        for phone in phones.values() {
            phone.sync(relay.addr).await?;
        }
        desk.sync(relay.addr).await?;
    }

    // Every record each device holds, cross-checked.
    for (v, phone) in &phones {
        let holds = held(&phone.store)?;
        ensure!(holds == residents[v], "phone-{v} holds {holds:?}, its team has {:?}", residents[v]);
        for other in VILLAGES.iter().filter(|o| *o != v) {
            ensure!(holds.is_disjoint(&residents[other]), "phone-{v} holds a resident of team {other}");
        }
    }
    ensure!(held(&desk.store)? == BTreeSet::from([referred]), "the desk holds only the referred record");
    ensure!(desk.store.export_json(referred)? == storage.export_json(referred)?);

    // A write to an out-of-scope record is refused and nothing of it is stored.
    let before = storage.export_json(referred)?;
    let intruder = &phones["b"];
    yilian_tests::lab::copy_log(&phones["a"].store, &intruder.store)?;
    intruder.store.record_visit(referred, follow_up_visit(99))?;
    let report = intruder.sync(relay.addr).await?;
    ensure!(
        report.outcome.refused.iter().any(|r| r.contains("outside the scope of phone-b")),
        "{:?}",
        report.outcome.refused
    );
    ensure!(storage.export_json(referred)? == before, "nothing of the refused write is stored");

    // The county closes the referral: the record stays through the grace period, then goes.
    for status in [TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::Completed] {
        let mut event = desk_event(status);
        if status == TaskStatus::Completed {
            event.discharge_summary = Some("BP controlled on two drugs".into());
        }
        desk.store.add_referral_event(referral, event)?;
    }
    desk.sync(relay.addr).await?;
    ensure!(storage.sweep_scope(now_ms())? == 0);
    desk.sync(relay.addr).await?;
    ensure!(held(&desk.store)?.contains(&referred), "within the grace period the desk keeps the record");
    let after_grace = now_ms() + GRACE.as_millis() as i64 + 60_000;
    ensure!(storage.sweep_scope(after_grace)? == 1);
    let report = desk.sync(relay.addr).await?;
    ensure!(report.outcome.purged == vec![referred], "{:?}", report.outcome);
    ensure!(held(&desk.store)?.is_empty() && desk.store.changes_since(0, usize::MAX)?.is_empty());
    // It flows no more.
    phones["a"].store.record_visit(referred, follow_up_visit(7))?;
    phones["a"].sync(relay.addr).await?;
    let report = desk.sync(relay.addr).await?;
    ensure!(report.outcome.received == 0 && held(&desk.store)?.is_empty());
    relay.shutdown().await;
    Ok(())
}

/// A client that presents someone else's certificate with its own key (and trusts any relay).
fn stolen_certificate_client(stolen: CertificateDer<'static>, own: &DeviceKey) -> Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (_, own_private) = device_certificate(own)?;
    let signer = provider.key_provider.load_private_key(own_private)?;
    let key = rustls::sign::CertifiedKey::new(vec![stolen], signer);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyRelay(provider)))
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?)))
}

#[derive(Debug)]
struct AnyRelay(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyRelay {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
