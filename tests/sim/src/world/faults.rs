//! The faults the scheduler injects (sessions cut, crashes, backups and restores of phones and
//! of the relay, changes by another path, sweeps, revocations, team moves) and the stores' clocks
//! (skewed phones).

use super::*;

impl World<'_> {
    // ---- faults ----

    pub(super) fn cut_session(&mut self) {
        if self.sessions.is_empty() {
            return;
        }
        let s = self.pick(self.sessions.len());
        self.tally.cuts += 1;
        self.end_session(s, "cut (connection lost)");
    }

    pub(super) fn drop_sessions_of(&mut self, phone: Option<usize>) {
        let mut s = 0;
        while s < self.sessions.len() {
            if phone.is_none_or(|p| self.sessions[s].phone == p) {
                self.end_session(s, "crash");
            } else {
                s += 1;
            }
        }
    }

    pub(super) fn reopen(&mut self, i: usize, path: PathBuf) -> Result<()> {
        self.phones[i].opens += 1;
        let options = options(&self.phones[i].clock, &self.phones[i].key, self.rng.r#gen());
        self.phones[i].store = self.arena.alloc(Store::open(&path, options)?);
        self.phones[i].path = path;
        Ok(())
    }

    pub(super) fn crash_phone(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        self.drop_sessions_of(Some(i));
        self.tally.phone_crashes += 1;
        self.trace(format!("{} crashes and restarts", self.phones[i].id));
        let path = self.phones[i].path.clone();
        self.reopen(i, path)
    }

    pub(super) fn crash_relay(&mut self) -> Result<()> {
        self.drop_sessions_of(None);
        self.ingest.clear();
        self.tally.relay_crashes += 1;
        self.trace("relay crashes and restarts".into());
        let options = options(&self.relay_clock, &self.relay_key, self.rng.r#gen());
        self.relay = self.arena.alloc(Store::open(&self.relay_path, options)?);
        Ok(())
    }

    pub(super) fn backup_phone(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        let phone = &self.phones[i];
        let backup = self.dir.join(format!("{}-backup-{}.db", phone.id, phone.backups.len()));
        copy_database(&phone.path, &backup)?;
        self.trace(format!("{} is backed up", self.phones[i].id));
        self.phones[i].backups.push(backup);
        Ok(())
    }

    /// The phone is lost and replaced by a new one restored from one of its older backups.
    pub(super) fn restore_phone(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        if self.phones[i].backups.is_empty() || self.phones[i].revoked {
            return Ok(());
        }
        let k = self.pick(self.phones[i].backups.len());
        self.drop_sessions_of(Some(i));
        // Edits the relay never received are gone with the phone: no system can bring them back.
        let at_relay = oracle::hashes(self.relay)?;
        for e in self.edits.iter_mut().filter(|e| e.phone == i) {
            if e.hashes.iter().any(|h| !at_relay.contains(h)) {
                e.lost_with_storage = true;
            }
        }
        let path = self.dir.join(format!("{}-{}.db", self.phones[i].id, self.phones[i].opens + 1));
        copy_database(&self.phones[i].backups[k], &path)?;
        self.tally.restores += 1;
        self.trace(format!("{} is lost and restored from backup {k}", self.phones[i].id));
        self.reopen(i, path)
    }

    /// One of a phone's changes reaches the relay before the ones it depends on, by another path
    /// (a township hub, another relay node).
    pub(super) fn early_delivery(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        let log = self.phones[i].store.local_changes_since(0, usize::MAX)?;
        let at_relay = oracle::hashes(self.relay)?;
        let unsent: Vec<_> = log.into_iter().filter(|c| !at_relay.contains(&c.hash)).collect();
        if unsent.len() < 2 {
            return Ok(());
        }
        let k = 1 + self.pick(unsent.len() - 1);
        let change = &unsent[k];
        let incoming =
            IncomingChange { doc_id: change.doc_id, bytes: change.bytes.clone(), signature: change.signature.clone() };
        // Forwarded by a hub that serves the whole consortium: its original signature is checked
        // as if the phone had pushed it.
        let push = ChildPush::new(HUB, vec![incoming], 0);
        let report = self.relay.ingest_group(vec![push]).pop().unwrap_or_else(|| Ok(ApplyReport::default()))?;
        self.tally.early_deliveries += 1;
        self.trace(format!(
            "a change of {} on {} reaches the relay early by another path ({} stored)",
            self.phones[i].id,
            short(change.doc_id),
            report.applied
        ));
        Ok(())
    }

    /// The relay's periodic scope sweep: closed referrals past their grace period leave the desk.
    pub(super) fn sweep(&mut self) -> Result<()> {
        let moved = self.relay.sweep_scope(self.now)?;
        self.trace(format!("relay sweeps scope ({moved} moved)"));
        Ok(())
    }

    pub(super) fn revoke(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        if self.phones[i].revoked || self.phones[i].team.is_none() {
            return Ok(());
        }
        self.relay.revoke_device(&self.phones[i].id, "admin", "phone lost")?;
        self.directory.push(DirectoryOp::Revoke(self.phones[i].id.clone()));
        self.phones[i].revoked = true;
        self.drop_sessions_of(Some(i));
        self.tally.revocations += 1;
        self.trace(format!("{} is revoked", self.phones[i].id));
        Ok(())
    }

    pub(super) fn backup_relay(&mut self) -> Result<()> {
        let backup = self.dir.join(format!("relay-backup-{}.db", self.relay_backups.len()));
        copy_database(&self.relay_path, &backup)?;
        self.trace(format!("the relay is backed up (backup {})", self.relay_backups.len()));
        self.relay_backups.push((backup, self.directory.len()));
        Ok(())
    }

    /// The relay's disk is lost and its database restored from an older backup; its operators
    /// redo the directory changes made since from their records. Devices keep what they hold.
    pub(super) fn restore_relay(&mut self) -> Result<()> {
        if self.relay_backups.is_empty() {
            return Ok(());
        }
        let k = self.pick(self.relay_backups.len());
        self.drop_sessions_of(None);
        self.ingest.clear();
        self.relay_opens += 1;
        let path = self.dir.join(format!("relay-{}.db", self.relay_opens));
        copy_database(&self.relay_backups[k].0, &path)?;
        // An edit the restored relay lacks that no phone still holds is gone with the disk.
        let restored = Store::open(&path, options(&self.relay_clock, &self.relay_key, self.rng.r#gen()))?;
        let mut held = oracle::hashes(&restored)?;
        for phone in &self.phones {
            held.extend(oracle::hashes(phone.store)?);
        }
        for e in self.edits.iter_mut() {
            if e.hashes.iter().any(|h| !held.contains(h)) {
                e.lost_with_storage = true;
            }
        }
        self.relay = self.arena.alloc(restored);
        self.relay_path = path;
        self.tally.relay_restores += 1;
        self.trace(format!("the relay is lost and restored from backup {k}"));
        let redo = self.directory[self.relay_backups[k].1..].to_vec();
        for op in redo {
            match op {
                DirectoryOp::Revoke(device) => {
                    self.relay.revoke_device(&device, "admin", "phone lost")?;
                }
                DirectoryOp::Member { team, practitioner, member } => {
                    self.relay.set_team_member(&team, &practitioner, member)?;
                }
            }
        }
        Ok(())
    }

    /// A doctor moves to another team, or joins a second one.
    pub(super) fn move_member(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        let Some(old) = self.phones[i].team.clone() else { return Ok(()) };
        let teams: Vec<String> = self.phones.iter().filter_map(|p| p.team.clone()).collect();
        let new = teams[self.pick(teams.len())].clone();
        if new == old || self.phones[i].revoked {
            return Ok(());
        }
        let practitioner = self.phones[i].practitioner.clone();
        let leaves = self.chance(0.5);
        let mut ops = vec![DirectoryOp::Member { team: new.clone(), practitioner: practitioner.clone(), member: true }];
        if leaves {
            ops.push(DirectoryOp::Member { team: old.clone(), practitioner: practitioner.clone(), member: false });
            self.phones[i].team = Some(new.clone());
        }
        for op in ops {
            if let DirectoryOp::Member { team, practitioner, member } = &op {
                self.relay.set_team_member(team, practitioner, *member)?;
            }
            self.directory.push(op);
        }
        self.tally.member_moves += 1;
        let how = if leaves { "moves from {old} to" } else { "joins" };
        self.trace(format!("{practitioner} {} {new}", how.replace("{old}", &old)));
        Ok(())
    }

    // ---- time ----

    /// Every store's clock reads the consortium's time, a phone's with its skew.
    pub(super) fn set_clocks(&mut self) {
        self.relay_clock.set(self.now);
        for phone in &self.phones {
            phone.clock.set(self.now + phone.skew);
        }
    }

    /// A phone's clock is set wrong (minutes to two days either way), or set right again.
    pub(super) fn skew_clock(&mut self) {
        let i = self.pick(self.phones.len());
        let skew = if self.chance(0.3) { 0 } else { self.rng.gen_range(-2 * 24 * 60..=2 * 24 * 60) * 60_000 };
        self.phones[i].skew = skew;
        self.set_clocks();
        self.tally.clock_skews += 1;
        let minutes = skew / 60_000;
        self.trace(format!(
            "{}'s clock is set {}h{:02}m {}",
            self.phones[i].id,
            minutes.abs() / 60,
            minutes.abs() % 60,
            if skew < 0 { "behind" } else { "ahead" }
        ));
    }
}

/// Copies a store's database (and its write-ahead log, which holds what is committed but not yet
/// checkpointed) as a backup app would while the app is idle.
fn copy_database(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)?;
    let wal = |p: &Path| PathBuf::from(format!("{}-wal", p.display()));
    if wal(from).exists() {
        std::fs::copy(wal(from), wal(to))?;
    }
    Ok(())
}
