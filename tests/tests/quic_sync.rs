//! Devices and a relay over real QUIC on 127.0.0.1: convergence after offline edits, a long
//! offline catch-up, sessions cut at dozens of points, a relay restarted mid-sync, and bad input
//! from a misbehaving client.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use anyhow::{Result, ensure};
use std::collections::HashSet;
use std::sync::Arc;
use yilian_core::identity::DeviceKey;
use yilian_core::net::{SessionOptions, client_config, connect};
use yilian_core::sync::{ErrorCode, FrameDecoder, Message, PerfectLink, WireChange, encode, sync_in_process};
use yilian_core::{ScopeGrant, Store, StoreOptions};
use yilian_tests::lab::{Phone, STEP, copy_log, enroll_directly, no_duplicates, open_store, same_records, start_relay};
use yilian_tests::{follow_up_visit, resident};

fn memory() -> Arc<Store> {
    Arc::new(Store::open_in_memory(StoreOptions::default()).unwrap())
}

/// `patients` residents with `visits` follow-ups each, recorded on `store`.
fn record(store: &Store, prefix: &str, patients: usize, visits: u64) -> Result<()> {
    for i in 0..patients {
        let p = store.create_patient(resident(&format!("{prefix}{i}")))?;
        for v in 0..visits {
            store.record_visit(p, follow_up_visit(v + i as u64))?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_over_quic_after_offline_edits_on_both() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    for device in ["wang", "county"] {
        storage.grant_scope(device, ScopeGrant::Everything)?;
    }
    let relay = start_relay(&dir.path().join("relay"), storage.clone()).await?;
    let wang = Phone::join("wang", open_store(dir.path().join("wang.db"))?, &relay, &storage).await?;
    let county = Phone::join("county", open_store(dir.path().join("county.db"))?, &relay, &storage).await?;

    let p = wang.store.create_patient(resident("刘桂兰"))?;
    wang.store.record_visit(p, follow_up_visit(1))?;
    let q = county.store.create_patient(resident("陈建国"))?;
    county.store.record_visit(q, follow_up_visit(2))?;
    wang.sync(relay.addr).await?;
    county.sync(relay.addr).await?;
    wang.sync(relay.addr).await?;
    same_records(&wang.store, &county.store)?;
    same_records(&wang.store, &storage)?;

    // Both edit the same record offline; both edits survive the merge.
    wang.store.record_visit(q, follow_up_visit(3))?;
    county.store.record_visit(q, follow_up_visit(4))?;
    county.sync(relay.addr).await?;
    wang.sync(relay.addr).await?;
    county.sync(relay.addr).await?;
    same_records(&wang.store, &county.store)?;
    same_records(&wang.store, &storage)?;
    ensure!(wang.store.patient(q)?.visits.len() == 3);
    // An idle sync: one round, a few dozen bytes.
    let idle = wang.sync(relay.addr).await?;
    ensure!(idle.rounds == 1 && idle.bytes_up + idle.bytes_down < 1024, "{idle:?}");
    relay.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_for_long_catches_up_in_one_session() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    storage.grant_scope("late", ScopeGrant::Everything)?;
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let late = Phone::join("late", open_store(dir.path().join("late.db"))?, &relay, &storage).await?;
    late.sync(relay.addr).await?;

    // While it is away, the rest of the consortium writes thousands of changes.
    let others = open_store(dir.path().join("others.db"))?;
    record(&others, "居民", 250, 10)?;
    let stats = sync_in_process(&others, "others", &storage, "relay", &mut PerfectLink)?;
    ensure!(stats.child.synced);
    let relay_changes = storage.last_seq()?;
    ensure!(relay_changes > 2_500, "{relay_changes}");

    let report = late.sync(relay.addr).await?;
    ensure!(report.outcome.received as i64 >= relay_changes - 1, "{report:?}");
    same_records(&late.store, &storage)?;
    ensure!(no_duplicates(&late.store)?);
    relay.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cut_at_fifty_points_always_resume_to_convergence() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hospital = memory();
    record(&hospital, "病人", 6, 3)?;

    // A fresh relay and device for each cut point; the device has work to push and the relay
    // has the hospital's records to pull, so cuts land in both directions.
    let setup = || async {
        let storage = memory();
        storage.grant_scope("dev", ScopeGrant::Everything)?;
        ensure!(sync_in_process(&hospital, "hospital", &storage, "relay", &mut PerfectLink)?.child.synced);
        let relay = start_relay(dir.path(), storage.clone()).await?;
        let device = Phone::join("dev", memory(), &relay, &storage).await?;
        record(&device.store, "居民", 6, 3)?;
        Ok::<_, anyhow::Error>((storage, relay, device))
    };
    let (_, relay, device) = setup().await?;
    let whole = device.sync(relay.addr).await?;
    let total = whole.bytes_up + whole.bytes_down;
    relay.shutdown().await;

    let cuts: Vec<u64> = (1..=52).map(|k| total * k / 53).collect();
    let mut interrupted = 0;
    for cut in &cuts {
        let (storage, relay, device) = setup().await?;
        let options = SessionOptions { live: false, cut_after_bytes: Some(*cut) };
        if device.sync_with(relay.addr, &options).await.is_err() {
            interrupted += 1;
        }
        device.sync(relay.addr).await?;
        same_records(&device.store, &storage)?;
        ensure!(no_duplicates(&device.store)? && no_duplicates(&storage)?, "a change was stored twice (cut {cut})");
        ensure!(device.store.patient_ids()?.len() == 12, "records lost at cut {cut}");
        ensure!(device.store.unacknowledged("relay")?.0 == 0, "unacknowledged changes left at cut {cut}");
        relay.shutdown().await;
    }
    ensure!(interrupted >= 50, "only {interrupted} of {} sessions were actually cut", cuts.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restarted_mid_sync_loses_nothing_it_acknowledged() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let relay_db = dir.path().join("relay.db");
    let device = {
        let storage = open_store(relay_db.clone())?;
        let relay = start_relay(dir.path(), storage.clone()).await?;
        let device = Phone::join("dev", open_store(dir.path().join("dev.db"))?, &relay, &storage).await?;
        record(&device.store, "居民", 300, 10)?;

        // Stop the relay as soon as its first batch from the device is committed.
        let mut events = storage.watch();
        let pushing = {
            let device = Phone::new("dev", device.store.clone(), relay.fingerprint)?;
            let addr = relay.addr;
            tokio::spawn(async move { device.sync(addr).await })
        };
        tokio::time::timeout(STEP, async {
            while storage.last_seq().unwrap_or(0) == 0 {
                events.changed().await.unwrap();
            }
        })
        .await?;
        relay.shutdown().await;
        ensure!(pushing.await?.is_err(), "the session should have been interrupted");
        device
    };

    // What the device holds as acknowledged must be on the relay's disk after a restart.
    let acked = device.store.peer_cursor("relay")?.acked_seq;
    let head = device.store.last_local_seq()?;
    ensure!(acked > 0 && acked < head, "the restart did not land mid-sync (acked {acked} of {head})");
    let storage = open_store(relay_db)?;
    let on_relay: HashSet<[u8; 32]> = storage.changes_since(0, usize::MAX)?.iter().map(|c| c.hash).collect();
    for change in device.store.local_changes_since(0, usize::MAX)? {
        ensure!(change.seq > acked || on_relay.contains(&change.hash), "acknowledged change {} was lost", change.seq);
    }

    let relay = start_relay(dir.path(), storage.clone()).await?;
    let device = Phone::new("dev", device.store.clone(), relay.fingerprint)?;
    device.sync(relay.addr).await?;
    same_records(&device.store, &storage)?;
    ensure!(no_duplicates(&storage)?);
    relay.shutdown().await;
    Ok(())
}

/// Sends raw bytes on a fresh session stream and returns the relay's answers.
async fn raw_session(
    addr: std::net::SocketAddr,
    fingerprint: yilian_core::net::Fingerprint,
    key: &DeviceKey,
    bytes: Vec<u8>,
) -> Result<Vec<Message>> {
    let endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
    let (conn, _) = connect(&endpoint, &client_config(fingerprint, key)?, addr).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&bytes).await?;
    send.finish()?;
    let answer = tokio::time::timeout(STEP, recv.read_to_end(1 << 20)).await??;
    let mut decoder = FrameDecoder::new();
    decoder.push(&answer);
    let mut out = Vec::new();
    while let Some(message) = decoder.next_message()? {
        out.push(message);
    }
    conn.close(quinn::VarInt::from_u32(0), b"");
    Ok(out)
}

fn error_of(answers: &[Message]) -> Option<(ErrorCode, String)> {
    answers.iter().find_map(|m| match m {
        Message::Error { code, message } => Some((*code, message.clone())),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_ends_that_session_with_a_reason_and_the_relay_serves_on() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = memory();
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let (addr, pin) = (relay.addr, relay.fingerprint);
    // A modified client, enrolled as "writer", that writes frames by hand.
    let writer = memory();
    let key = writer.device_key();
    enroll_directly(&storage, "writer", &key)?;

    // A frame whose payload is garbage.
    let mut garbage = vec![0, 0, 0, 6, yilian_core::sync::PROTOCOL_VERSION, 0];
    garbage.extend_from_slice(&[0xff; 4]);
    let (code, why) = error_of(&raw_session(addr, pin, &key, garbage).await?).unwrap();
    ensure!(code == ErrorCode::Protocol && why.contains("not a valid message"), "{why}");

    // A frame announcing more than the limit.
    let (code, why) = error_of(&raw_session(addr, pin, &key, (64u32 << 20).to_be_bytes().to_vec()).await?).unwrap();
    ensure!(code == ErrorCode::Protocol && why.contains("over the"), "{why}");

    // Another protocol version.
    let hello = Message::Hello {
        peer: "x".into(),
        log_id: String::new(),
        read_seq: 0,
        local_head: 0,
        grant_seq: 0,
        catch_up: None,
        session: 1,
        restored: false,
    };
    let mut frame = encode(&hello);
    frame[4] = 9;
    let (code, why) = error_of(&raw_session(addr, pin, &key, frame).await?).unwrap();
    ensure!(code == ErrorCode::Version && why.contains("version 9"), "{why}");

    // Items that are not automerge, or are for a record outside the scope, are refused one by
    // one; the good item of the same batch is stored.
    let owner = Phone::join("owner", memory(), &relay, &storage).await?;
    let theirs = owner.store.create_patient(resident("别人的"))?;
    owner.sync(addr).await?;
    let mine = writer.create_patient(resident("自己的"))?;
    let good = writer.changes_since(0, usize::MAX)?;
    let other = Store::open_in_memory(StoreOptions::default())?;
    copy_log(&owner.store, &other)?;
    other.record_visit(theirs, follow_up_visit(9))?;
    let foreign = other.local_changes_since(0, usize::MAX)?;
    let mut items: Vec<WireChange> = good
        .iter()
        .chain(foreign.iter())
        .enumerate()
        .map(|(i, c)| WireChange {
            seq: i as i64 + 1,
            doc: *c.doc_id.0.as_bytes(),
            bytes: c.bytes.clone(),
            signature: c.signature.clone(),
        })
        .collect();
    let n = items.len() as i64;
    items.push(WireChange { seq: n + 1, doc: *mine.0.as_bytes(), bytes: b"not automerge".to_vec(), signature: None });
    let hello = Message::Hello {
        peer: "writer".into(),
        log_id: String::new(),
        read_seq: 0,
        local_head: n + 1,
        grant_seq: 0,
        catch_up: None,
        session: 1,
        restored: false,
    };
    let push = Message::Push { from_seq: 0, to_seq: n + 1, items };
    let answers = raw_session(addr, pin, &key, [encode(&hello), encode(&push)].concat()).await?;
    let refused: Vec<(i64, String)> = answers
        .iter()
        .find_map(|m| match m {
            Message::Refused { items } => Some(items.clone()),
            _ => None,
        })
        .unwrap();
    ensure!(refused.len() == 2, "{refused:?}");
    ensure!(refused.iter().any(|(_, why)| why.contains("outside the scope of writer")), "{refused:?}");
    ensure!(refused.iter().any(|(s, why)| *s == n + 1 && why.contains("automerge")), "{refused:?}");
    ensure!(answers.iter().any(|m| matches!(m, Message::Ack { up_to } if *up_to == n + 1)), "{answers:?}");
    ensure!(storage.patient(mine).is_ok(), "the good item was stored");
    ensure!(storage.patient(theirs)?.visits.is_empty(), "nothing of the out-of-scope item was stored");

    // The relay still serves everyone else.
    let fine = Phone::join("fine", memory(), &relay, &storage).await?;
    fine.store.create_patient(resident("好好的"))?;
    fine.sync(addr).await?;
    relay.shutdown().await;
    Ok(())
}

/// A device waiting on a parent that has sent nothing for a while sends it a one-byte datagram
/// (a "nudge"), so that after an outage its acknowledgements reach the relay without waiting for
/// the relay's next loss probe. Here the parent accepts the session and never answers: the nudge
/// arrives about [`NUDGE_AFTER`] later, and the session still ends cleanly when stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_nudges_a_silent_parent_with_a_datagram() -> Result<()> {
    use std::time::{Duration, Instant};
    use tokio_util::sync::CancellationToken;
    use yilian_core::net::{NUDGE_AFTER, RelayIdentity, client_endpoint, relay_endpoint, sync_over};

    let identity = RelayIdentity::generate()?;
    let server = relay_endpoint(&identity, ([127, 0, 0, 1], 0).into())?;
    let addr = server.local_addr()?;
    let silent = tokio::spawn(async move {
        let conn = server.accept().await.expect("a connection").await?;
        // Take the session's stream and its hello, answer nothing.
        let (send, mut recv) = conn.accept_bi().await?;
        let mut hello = [0u8; 1];
        recv.read_exact(&mut hello).await?;
        let datagram = tokio::time::timeout(Duration::from_secs(10), conn.read_datagram()).await??;
        // The connection and the stream stay open (returned) until the test ends.
        anyhow::Ok((datagram, Instant::now(), conn, send))
    });

    let device = memory();
    let config = client_config(identity.fingerprint(), &device.device_key())?;
    let endpoint = client_endpoint(([127, 0, 0, 1], 0).into())?;
    let (conn, _) = connect(&endpoint, &config, addr).await?;
    let stop = CancellationToken::new();
    let began = Instant::now();
    let session = {
        let (conn, device, stop) = (conn.clone(), device.clone(), stop.clone());
        tokio::spawn(async move {
            sync_over(&conn, &device, "quiet-phone", "relay", &SessionOptions::default(), &stop, &mut |_| {}).await
        })
    };
    let (datagram, arrived, _server_conn, _server_stream) = silent.await??;
    ensure!(datagram[..] == [0u8], "the nudge is one zero byte: {datagram:?}");
    let after = arrived - began;
    ensure!(after >= NUDGE_AFTER, "nudged only after a silence, not at once: {after:?}");
    ensure!(conn.stats().frame_tx.datagram >= 1);
    stop.cancel();
    let report = session.await??;
    ensure!(!report.outcome.synced, "nothing was ever answered: {report:?}");
    Ok(())
}

/// A phone restored from an older backup that records more than the restore lost before it
/// syncs: over QUIC, one `sync` finds the relay's mark missing from its log, starts a second
/// session that says so, and ends with its new edits at the relay and its lost ones back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_restored_from_a_backup_is_repaired_both_ways_in_one_sync() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    storage.grant_scope("wang", ScopeGrant::Everything)?;
    let relay = start_relay(&dir.path().join("relay"), storage.clone()).await?;
    let (db, backup) = (dir.path().join("wang.db"), dir.path().join("backup.db"));
    let p = {
        let wang = Phone::join("wang", open_store(db.clone())?, &relay, &storage).await?;
        let p = wang.store.create_patient(resident("刘桂兰"))?;
        wang.sync(relay.addr).await?;
        p
    };
    std::fs::copy(&db, &backup)?;
    {
        let wang = Phone::new("wang", open_store(db.clone())?, relay.fingerprint)?;
        for v in 0..3 {
            wang.store.record_visit(p, follow_up_visit(v))?;
        }
        wang.sync(relay.addr).await?;
    }
    std::fs::copy(&backup, &db)?;
    let wang = Phone::new("wang", open_store(db.clone())?, relay.fingerprint)?;
    for v in 0..6 {
        wang.store.record_visit(p, follow_up_visit(10 + v))?;
    }
    wang.sync(relay.addr).await?;
    ensure!(storage.patient(p)?.visits.len() == 9, "the restored phone's 6 new visits reached the relay");
    ensure!(wang.store.patient(p)?.visits.len() == 9, "the 3 visits the restore lost came back");
    same_records(&wang.store, &storage)?;
    no_duplicates(&storage)?;
    relay.shutdown().await;
    Ok(())
}
