//! Durable storage of the cluster metadata Raft log (issue 15): entries, hard state and the
//! latest snapshot, behind raft-rs's `Storage` trait.
//!
//! Owns: `<dir>/raft.log` (entries), `<dir>/hard_state`, `<dir>/snapshot`.
//! May import: the `raft` and `protobuf` crates, std fs. No sockets, no shards.
//! Runs on: whichever thread drives the metadata Raft node (std fs blocks; a blocking pool later).
//!
//! Format: `raft.log` is a sequence of frames `[len u32 LE][crc32c u32 LE][Entry protobuf]`,
//! appended in order; a frame whose index is at or below the last one read replaces the tail
//! from that index (Raft overwrote a conflicting suffix). `hard_state` and `snapshot` are one
//! frame each, replaced atomically (temp file, fsync, rename, directory fsync).
//!
//! Invariants: every mutating call returns only after fsync, so a caller may report
//! persistence to Raft when it returns Ok. At open, a damaged *last* frame (a torn append cut
//! by a crash) is truncated; damage followed by more frames, or damage that would cut below the
//! persisted commit index, refuses to open with `RaftLogError::Corrupt` — committed entries are
//! never discarded silently. Without a directory (`RaftLogStore::in_memory`) the same state is
//! kept in memory only; the simulator uses that as "durable" state that survives a crash.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage};

const LOG_FILE: &str = "raft.log";
const HARD_STATE_FILE: &str = "hard_state";
const SNAPSHOT_FILE: &str = "snapshot";
const FRAME_HEADER_BYTES: usize = 8;
/// A frame larger than this is damage, not an entry (metadata records are small).
pub const RAFT_ENTRY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Errors of the durable Raft log.
#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    #[error("raft log I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("raft log {path} is damaged at byte {position}: {reason}; refusing to start")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("raft log encode: {0}")]
    Encode(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RaftLogError + '_ {
    move |source| RaftLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `open` found and did, for the start-up log line and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RaftLogRecovery {
    pub entries_loaded: u64,
    /// Bytes cut from the end of `raft.log` (a torn append).
    pub torn_tail_bytes: u64,
}

/// The Raft log store: an in-memory copy of the live entries, hard state and snapshot, written
/// through to files when opened on a directory.
#[derive(Debug)]
pub struct RaftLogStore {
    dir: Option<PathBuf>,
    log_file: Option<File>,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// Live entries, dense, starting at `snapshot.index + 1`.
    entries: Vec<Entry>,
}

impl RaftLogStore {
    /// A store that keeps everything in memory (tests and the simulator). `voters` is the
    /// initial configuration, the same on every node.
    pub fn in_memory(voters: &[u64]) -> Self {
        RaftLogStore {
            dir: None,
            log_file: None,
            hard_state: HardState::default(),
            conf_state: conf_state_of(voters),
            snapshot: Snapshot::default(),
            entries: Vec::new(),
        }
    }

    /// An in-memory copy of everything this store has persisted — all of its state, since
    /// every mutating call syncs before it changes memory. The simulator's crash keeps this
    /// and loses the rest of the node.
    pub fn durable_copy(&self) -> RaftLogStore {
        RaftLogStore {
            dir: None,
            log_file: None,
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }

    /// Opens (or creates) the store in `dir`, recovering what a crash left.
    pub fn open(dir: &Path, voters: &[u64]) -> Result<(Self, RaftLogRecovery), RaftLogError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut store = RaftLogStore::in_memory(voters);
        store.dir = Some(dir.to_path_buf());
        if let Some(bytes) = read_single_frame(&dir.join(HARD_STATE_FILE))? {
            store.hard_state = HardState::parse_from_bytes(&bytes)
                .map_err(|e| corrupt(&dir.join(HARD_STATE_FILE), 0, e.to_string()))?;
        }
        if let Some(bytes) = read_single_frame(&dir.join(SNAPSHOT_FILE))? {
            store.snapshot = Snapshot::parse_from_bytes(&bytes)
                .map_err(|e| corrupt(&dir.join(SNAPSHOT_FILE), 0, e.to_string()))?;
            store.conf_state = store.snapshot.get_metadata().get_conf_state().clone();
        }
        let recovery = store.load_log(&dir.join(LOG_FILE))?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error(&path))?;
        store.log_file = Some(file);
        sync_dir(dir)?;
        Ok((store, recovery))
    }

    fn load_log(&mut self, path: &Path) -> Result<RaftLogRecovery, RaftLogError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes).map_err(io_error(path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path)(e)),
        }
        let mut position = 0usize;
        let mut recovery = RaftLogRecovery::default();
        while position < bytes.len() {
            // An empty payload is never an entry (every entry has an index): it is what a
            // zero-filled tail decodes to, since the CRC32C of nothing is 0.
            let frame = decode_frame(&bytes[position..]).and_then(|(payload, frame_len)| {
                if payload.is_empty() {
                    Err("empty frame".to_string())
                } else {
                    Ok((payload, frame_len))
                }
            });
            match frame {
                Ok((payload, frame_len)) => {
                    let entry = Entry::parse_from_bytes(payload)
                        .map_err(|e| corrupt(path, position as u64, e.to_string()))?;
                    self.load_entry(entry);
                    recovery.entries_loaded += 1;
                    position += frame_len;
                }
                Err(reason) => {
                    let rest = &bytes[position..];
                    if !is_torn_tail(rest) {
                        return Err(corrupt(path, position as u64, reason));
                    }
                    if self.last_index() < self.hard_state.commit {
                        return Err(corrupt(
                            path,
                            position as u64,
                            format!(
                                "{reason}; the log ends at index {} below the committed index {}",
                                self.last_index(),
                                self.hard_state.commit
                            ),
                        ));
                    }
                    recovery.torn_tail_bytes = rest.len() as u64;
                    tracing::warn!(
                        path = %path.display(),
                        position,
                        bytes = rest.len(),
                        %reason,
                        "raft log: truncating a torn tail"
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io_error(path))?;
                    file.set_len(position as u64).map_err(io_error(path))?;
                    file.sync_all().map_err(io_error(path))?;
                    break;
                }
            }
        }
        if self.last_index() < self.hard_state.commit {
            return Err(corrupt(
                path,
                position as u64,
                format!(
                    "the log ends at index {} below the committed index {}",
                    self.last_index(),
                    self.hard_state.commit
                ),
            ));
        }
        Ok(recovery)
    }

    /// Replays one stored entry: older than the snapshot is skipped, a repeated index replaces
    /// the tail from there.
    fn load_entry(&mut self, entry: Entry) {
        if entry.index <= self.snapshot_index() {
            return;
        }
        self.truncate_from(entry.index);
        if entry.index == self.last_index() + 1 {
            self.entries.push(entry);
        }
    }

    fn truncate_from(&mut self, index: u64) {
        let first = self.snapshot_index() + 1;
        if index < first {
            self.entries.clear();
        } else {
            self.entries.truncate((index - first) as usize);
        }
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |entry| entry.index)
    }

    /// The hard state as last persisted.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The latest snapshot (empty metadata index 0 when none).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Appends entries (Raft may overwrite a conflicting suffix) and syncs them.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), RaftLogError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert!(
            first.index > self.snapshot_index() && first.index <= self.last_index() + 1,
            "raft append at {} outside ({}, {}]",
            first.index,
            self.snapshot_index(),
            self.last_index() + 1
        );
        let path = self.log_path();
        if let Some(file) = self.log_file.as_mut() {
            let mut buffer = Vec::new();
            for entry in entries {
                let payload = entry
                    .write_to_bytes()
                    .map_err(|e| RaftLogError::Encode(e.to_string()))?;
                encode_frame(&payload, &mut buffer);
            }
            file.write_all(&buffer).map_err(io_error(&path))?;
            file.sync_data().map_err(io_error(&path))?;
        }
        self.truncate_from(first.index);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Replaces the hard state durably.
    pub fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), RaftLogError> {
        if let Some(dir) = self.dir.as_deref() {
            let payload = hard_state
                .write_to_bytes()
                .map_err(|e| RaftLogError::Encode(e.to_string()))?;
            replace_file(dir, HARD_STATE_FILE, &payload)?;
        }
        self.hard_state = hard_state.clone();
        Ok(())
    }

    /// Records that entries up to `commit` are committed (the commit index is part of the hard
    /// state; raft-rs reports an advance without a new term or vote after `advance`).
    pub fn set_commit(&mut self, commit: u64) -> Result<(), RaftLogError> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = commit;
        self.set_hard_state(&hard_state)
    }

    /// Installs a snapshot received from the leader: it replaces every entry it covers and the
    /// entries after it (a follower that needs a snapshot has nothing useful past it).
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), RaftLogError> {
        let metadata = snapshot.get_metadata();
        if metadata.index <= self.snapshot_index() {
            return Ok(());
        }
        self.write_snapshot(snapshot)?;
        self.conf_state = metadata.get_conf_state().clone();
        self.entries.clear();
        self.rewrite_log()?;
        let mut hard_state = self.hard_state.clone();
        hard_state.term = hard_state.term.max(metadata.term);
        hard_state.commit = hard_state.commit.max(metadata.index);
        self.set_hard_state(&hard_state)
    }

    /// Takes a snapshot of the applied state at `index` and drops the entries it covers.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), RaftLogError> {
        if index <= self.snapshot_index() {
            return Ok(());
        }
        assert!(
            index <= self.hard_state.commit && index <= self.last_index(),
            "compact to {index} past commit {} or last {}",
            self.hard_state.commit,
            self.last_index()
        );
        let term = self.entry_term(index);
        let first = self.snapshot_index() + 1;
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data.into());
        let metadata = snapshot.mut_metadata();
        metadata.index = index;
        metadata.term = term;
        metadata.set_conf_state(self.conf_state.clone());
        self.write_snapshot(&snapshot)?;
        self.entries.drain(..(index + 1 - first) as usize);
        self.snapshot = snapshot;
        self.rewrite_log()
    }

    fn entry_term(&self, index: u64) -> u64 {
        if index == self.snapshot_index() {
            return self.snapshot.get_metadata().term;
        }
        let first = self.snapshot_index() + 1;
        self.entries[(index - first) as usize].term
    }

    fn write_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), RaftLogError> {
        if let Some(dir) = self.dir.as_deref() {
            let payload = snapshot
                .write_to_bytes()
                .map_err(|e| RaftLogError::Encode(e.to_string()))?;
            replace_file(dir, SNAPSHOT_FILE, &payload)?;
        }
        self.snapshot = snapshot.clone();
        Ok(())
    }

    /// Rewrites `raft.log` with the live entries only (after a snapshot).
    fn rewrite_log(&mut self) -> Result<(), RaftLogError> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let mut buffer = Vec::new();
        for entry in &self.entries {
            let payload = entry
                .write_to_bytes()
                .map_err(|e| RaftLogError::Encode(e.to_string()))?;
            encode_frame(&payload, &mut buffer);
        }
        self.log_file = None;
        replace_file(&dir, LOG_FILE, &buffer)?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        self.log_file = Some(file);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .as_deref()
            .map_or_else(PathBuf::new, |dir| dir.join(LOG_FILE))
    }
}

impl Storage for RaftLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.snapshot_index() + 1;
        if low < first {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let mut entries = self.entries[(low - first) as usize..(high - first) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if index < self.snapshot_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if index > self.last_index() {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        Ok(self.entry_term(index))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(RaftLogStore::last_index(self))
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index || self.snapshot_index() == 0 {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

fn conf_state_of(voters: &[u64]) -> ConfState {
    let mut conf_state = ConfState::default();
    conf_state.set_voters(voters.to_vec());
    conf_state
}

fn corrupt(path: &Path, position: u64, reason: String) -> RaftLogError {
    RaftLogError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    }
}

fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= RAFT_ENTRY_BYTES_MAX,
        "raft frame too large"
    );
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the frame at the start of `bytes`: its payload and whole length.
fn decode_frame(bytes: &[u8]) -> Result<(&[u8], usize), String> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(format!("short frame header ({} bytes)", bytes.len()));
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[0..4]);
    let len = u32::from_le_bytes(word) as usize;
    word.copy_from_slice(&bytes[4..8]);
    let crc = u32::from_le_bytes(word);
    if len > RAFT_ENTRY_BYTES_MAX {
        return Err(format!("frame length {len} over the maximum"));
    }
    let Some(payload) = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Err(format!("frame of {len} bytes cut short"));
    };
    if crc32c::crc32c(payload) != crc {
        return Err("frame CRC32C mismatch".to_string());
    }
    Ok((payload, FRAME_HEADER_BYTES + len))
}

/// A damaged frame is a torn tail when it is the last thing in the file: its declared length
/// reaches the end, or only zeros follow its header (a preallocated or zero-filled tail).
fn is_torn_tail(rest: &[u8]) -> bool {
    if rest.len() < FRAME_HEADER_BYTES {
        return true;
    }
    if rest.iter().all(|byte| *byte == 0) {
        return true;
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&rest[0..4]);
    let len = u32::from_le_bytes(word) as usize;
    FRAME_HEADER_BYTES + len >= rest.len()
}

fn read_single_frame(path: &Path) -> Result<Option<Vec<u8>>, RaftLogError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    match decode_frame(&bytes) {
        Ok((payload, len)) if len == bytes.len() => Ok(Some(payload.to_vec())),
        Ok(_) => Err(corrupt(path, 0, "trailing bytes after the frame".into())),
        Err(reason) => Err(corrupt(path, 0, reason)),
    }
}

/// Writes `name` in `dir` atomically: temp file, fsync, rename, directory fsync.
fn replace_file(dir: &Path, name: &str, payload: &[u8]) -> Result<(), RaftLogError> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let mut framed = Vec::with_capacity(payload.len() + FRAME_HEADER_BYTES);
    if name == LOG_FILE {
        framed.extend_from_slice(payload);
    } else {
        encode_frame(payload, &mut framed);
    }
    let mut file = File::create(&temp).map_err(io_error(&temp))?;
    file.write_all(&framed).map_err(io_error(&temp))?;
    file.sync_all().map_err(io_error(&temp))?;
    drop(file);
    std::fs::rename(&temp, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), RaftLogError> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        let mut entry = Entry::default();
        entry.set_index(index);
        entry.set_term(term);
        entry.set_data(data.to_vec().into());
        entry
    }

    fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
        let mut hard_state = HardState::default();
        hard_state.set_term(term);
        hard_state.set_vote(vote);
        hard_state.set_commit(commit);
        hard_state
    }

    fn all_entries(store: &RaftLogStore) -> Vec<(u64, u64, Vec<u8>)> {
        let first = Storage::first_index(store).unwrap();
        let last = Storage::last_index(store).unwrap();
        store
            .entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap()
            .into_iter()
            .map(|e| (e.index, e.term, e.data.to_vec()))
            .collect()
    }

    #[test]
    fn reopen_gives_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = RaftLogStore::open(dir.path(), &[1, 2, 3]).unwrap();
        store
            .append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])
            .unwrap();
        // Raft overwrites a conflicting suffix from index 3.
        store
            .append(&[entry(3, 2, b"C"), entry(4, 2, b"d")])
            .unwrap();
        store.set_hard_state(&hard_state(2, 1, 2)).unwrap();
        store.compact(2, b"state@2".to_vec()).unwrap();
        store.append(&[entry(5, 2, b"e")]).unwrap();
        let before = all_entries(&store);
        drop(store);

        let (store, recovery) = RaftLogStore::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(recovery.torn_tail_bytes, 0);
        assert_eq!(all_entries(&store), before);
        assert_eq!(
            before,
            vec![
                (3, 2, b"C".to_vec()),
                (4, 2, b"d".to_vec()),
                (5, 2, b"e".to_vec())
            ]
        );
        assert_eq!(store.hard_state(), &hard_state(2, 1, 2));
        assert_eq!(store.latest_snapshot().get_metadata().index, 2);
        assert_eq!(store.latest_snapshot().get_metadata().term, 1);
        assert_eq!(&store.latest_snapshot().data[..], b"state@2");
        assert_eq!(store.term(2).unwrap(), 1);
        assert_eq!(
            store.initial_state().unwrap().conf_state.voters,
            vec![1, 2, 3]
        );
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = RaftLogStore::open(dir.path(), &[1]).unwrap();
        store
            .append(&[entry(1, 1, b"a"), entry(2, 1, b"b")])
            .unwrap();
        store.set_hard_state(&hard_state(1, 1, 1)).unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let full = std::fs::metadata(&path).unwrap().len();
        // Every cut inside the last frame is a torn append of entry 2.
        let mut frame = Vec::new();
        encode_frame(&entry(2, 1, b"b").write_to_bytes().unwrap(), &mut frame);
        for cut in 1..frame.len() as u64 {
            let (mut store, _) = RaftLogStore::open(dir.path(), &[1]).unwrap();
            store.append(&[entry(2, 1, b"b")]).unwrap();
            drop(store);
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(full - cut).unwrap();
            drop(file);
            let (store, recovery) = RaftLogStore::open(dir.path(), &[1]).unwrap();
            assert_eq!(
                recovery.torn_tail_bytes,
                frame.len() as u64 - cut,
                "cut {cut}"
            );
            assert_eq!(all_entries(&store), vec![(1, 1, b"a".to_vec())]);
        }
        // A zero-filled tail is a torn tail too.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0u8; 64]).unwrap();
        drop(file);
        let (mut store, recovery) = RaftLogStore::open(dir.path(), &[1]).unwrap();
        assert_eq!(recovery.torn_tail_bytes, 64);
        store.append(&[entry(2, 1, b"B")]).unwrap();
        drop(store);
        let (store, _) = RaftLogStore::open(dir.path(), &[1]).unwrap();
        assert_eq!(
            all_entries(&store),
            vec![(1, 1, b"a".to_vec()), (2, 1, b"B".to_vec())]
        );
    }

    #[test]
    fn bit_flip_inside_the_log_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = RaftLogStore::open(dir.path(), &[1]).unwrap();
        store
            .append(&[
                entry(1, 1, b"aaaa"),
                entry(2, 1, b"bbbb"),
                entry(3, 1, b"cccc"),
            ])
            .unwrap();
        store.set_hard_state(&hard_state(1, 1, 3)).unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let original = std::fs::read(&path).unwrap();
        for position in 0..original.len() {
            let mut damaged = original.clone();
            damaged[position] ^= 0x10;
            std::fs::write(&path, &damaged).unwrap();
            match RaftLogStore::open(dir.path(), &[1]) {
                Err(RaftLogError::Corrupt { .. }) => {}
                other => panic!("bit flip at {position}: expected Corrupt, got {other:?}"),
            }
        }
        // A torn tail that would cut committed entries refuses too.
        std::fs::write(&path, &original[..original.len() - 3]).unwrap();
        assert!(matches!(
            RaftLogStore::open(dir.path(), &[1]),
            Err(RaftLogError::Corrupt { .. })
        ));
        // Damaged hard state refuses.
        std::fs::write(&path, &original).unwrap();
        let hard_state_path = dir.path().join(HARD_STATE_FILE);
        let mut bytes = std::fs::read(&hard_state_path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&hard_state_path, &bytes).unwrap();
        assert!(matches!(
            RaftLogStore::open(dir.path(), &[1]),
            Err(RaftLogError::Corrupt { .. })
        ));
    }
}
