//! Whether the OS watch on the import folder still watches the import
//! folder. A watch is on the folder itself, not on its path: after
//! `rm -rf import && mkdir import`, or a file system mounted over it, the path
//! names another folder, notifications stop for good, and only the full scan
//! every 30 s would find new files. So the importer compares the identity of
//! the folder at the path with the one it watches, at every scan and at once
//! when the OS says the watched folder went away, and re-arms the watch.
//!
//! Pure: the caller reads the folder's metadata and says what it logged.

/// What tells one folder from another at the same path: device and inode
/// on Unix, with the creation time where the file system keeps one (a folder
/// removed and created again at once often gets the freed inode back); on
/// Windows its creation time (the volume serial number and file index are
/// not in stable Rust; NTFS may hand a folder created under a name just
/// freed the old creation time, so there the OS's removal report is what
/// tells).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FolderId {
    device: u64,
    node: u64,
    created_ns: u64,
}

impl FolderId {
    pub fn of(meta: &std::fs::Metadata) -> FolderId {
        // 0 where the file system does not say.
        let created_ns = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FolderId {
                device: meta.dev(),
                node: meta.ino(),
                created_ns,
            }
        }
        #[cfg(not(unix))]
        {
            FolderId {
                device: 0,
                node: 0,
                created_ns,
            }
        }
    }

    /// For tests: an identity from its parts.
    pub fn from_parts(device: u64, node: u64) -> FolderId {
        FolderId {
            device,
            node,
            created_ns: 0,
        }
    }
}

/// What to do about the watch after a look at the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchAction {
    /// The watched folder is still there: nothing to do.
    Keep,
    /// The folder is there and not watched (the first look, or the watch
    /// could not be started before): start one, nothing to log.
    Arm,
    /// Another folder than the watched one is at the path (removed and
    /// created again, renamed away and replaced, or mounted over): drop the
    /// old watch, watch the new folder, log it once.
    Replaced,
    /// The folder is there again after it was reported missing: watch it,
    /// log it once.
    Back,
    /// The watched folder is gone: drop the watch, look again soon (it is
    /// reported missing only if it stays away).
    Lost,
    /// Still no folder at the path.
    Missing,
}

/// The importer's view of its watch.
#[derive(Debug, Clone, Default)]
pub struct FolderWatch {
    /// The folder the running watch is on.
    watched: Option<FolderId>,
    /// The folder a watch was on until it went away.
    lost: Option<FolderId>,
    /// The OS said that folder was removed: whatever appears at the path is
    /// another one, even with the same identity (a reused inode).
    removed: bool,
    /// No folder was at the path at the last look.
    gone: bool,
}

impl FolderWatch {
    /// Decides from what is at the path now (`seen`: `None` when there is no
    /// folder); `reported_missing` says the importer has logged that the
    /// folder cannot be read.
    pub fn check(&mut self, seen: Option<FolderId>, reported_missing: bool) -> WatchAction {
        match (self.watched, seen) {
            (Some(watched), Some(now)) if watched == now => WatchAction::Keep,
            (Some(_), Some(_)) => {
                self.watched = None;
                WatchAction::Replaced
            }
            (Some(watched), None) => {
                self.watched = None;
                self.lost = Some(watched);
                self.gone = true;
                WatchAction::Lost
            }
            (None, None) => {
                self.gone = true;
                WatchAction::Missing
            }
            (None, Some(now)) => {
                let was_gone = std::mem::take(&mut self.gone);
                let removed = std::mem::take(&mut self.removed);
                match self.lost.take() {
                    // Only a folder that was not there is back: one that
                    // exists but cannot be read is re-armed quietly.
                    _ if was_gone && reported_missing => WatchAction::Back,
                    Some(lost) if removed || lost != now => WatchAction::Replaced,
                    // Renamed away and back before anyone noticed, the first
                    // look, or a watch that could not run: nothing happened
                    // an admin needs to know.
                    _ => WatchAction::Arm,
                }
            }
        }
    }

    /// The OS reported the watched folder removed (not renamed: that one
    /// may come back). The next [`check`](Self::check) decides what to do.
    pub fn removed(&mut self) {
        if let Some(watched) = self.watched.take() {
            self.lost = Some(watched);
            self.removed = true;
        }
    }

    /// A watch on folder `id` is running.
    pub fn watching(&mut self, id: FolderId) {
        self.watched = Some(id);
        self.lost = None;
        self.removed = false;
        self.gone = false;
    }

    /// No watch is running (it could not start, or the folder could not be
    /// read): the next look arms one.
    pub fn not_watching(&mut self) {
        self.watched = None;
    }

    /// The watch was lost and the folder not seen since.
    pub fn is_lost(&self) -> bool {
        self.watched.is_none() && self.lost.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: FolderId = FolderId {
        device: 1,
        node: 10,
        created_ns: 0,
    };
    const NEW: FolderId = FolderId {
        device: 1,
        node: 11,
        created_ns: 0,
    };
    const MOUNTED: FolderId = FolderId {
        device: 2,
        node: 10,
        created_ns: 0,
    };

    fn watching(id: FolderId) -> FolderWatch {
        let mut watch = FolderWatch::default();
        assert_eq!(watch.check(Some(id), false), WatchAction::Arm);
        watch.watching(id);
        watch
    }

    #[test]
    fn the_same_folder_keeps_its_watch() {
        let mut watch = watching(OLD);
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Keep);
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Keep);
    }

    #[test]
    fn a_folder_replaced_under_the_watch_is_watched_anew() {
        // rm -rf import && mkdir import, seen by the next scan.
        let mut watch = watching(OLD);
        assert_eq!(watch.check(Some(NEW), false), WatchAction::Replaced);
        watch.watching(NEW);
        assert_eq!(watch.check(Some(NEW), false), WatchAction::Keep);
        // A file system mounted over it: same inode number, other device.
        assert_eq!(
            watch.check(Some(FolderId::from_parts(2, 11)), false),
            WatchAction::Replaced
        );
        let mut watch = watching(OLD);
        assert_eq!(watch.check(Some(MOUNTED), false), WatchAction::Replaced);
    }

    #[test]
    fn a_folder_removed_and_created_again_before_it_was_reported_is_replaced() {
        // The OS said the watched folder went away; it is back at the next
        // look, created anew: one line, "replaced".
        let mut watch = watching(OLD);
        assert_eq!(watch.check(None, false), WatchAction::Lost);
        assert!(watch.is_lost());
        assert_eq!(watch.check(None, false), WatchAction::Missing);
        assert_eq!(watch.check(Some(NEW), false), WatchAction::Replaced);
        assert!(!watch.is_lost());
        watch.watching(NEW);
        assert_eq!(watch.check(Some(NEW), false), WatchAction::Keep);
    }

    #[test]
    fn a_removed_folder_created_again_with_its_inode_reused_is_replaced() {
        // rm -rf import && mkdir import on a file system without creation
        // times: the new folder may get the same inode number. The OS said
        // the watched one was removed, so it is not the same folder.
        let mut watch = watching(OLD);
        watch.removed();
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Replaced);
        watch.watching(OLD);
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Keep);
        // Removed and not back yet.
        watch.removed();
        assert_eq!(watch.check(None, false), WatchAction::Missing);
        assert!(watch.is_lost());
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Replaced);
        // A removal report without a watch changes nothing.
        let mut watch = FolderWatch::default();
        watch.removed();
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Arm);
    }

    #[test]
    fn a_folder_that_was_reported_missing_is_back() {
        let mut watch = watching(OLD);
        assert_eq!(watch.check(None, false), WatchAction::Lost);
        assert_eq!(watch.check(None, true), WatchAction::Missing);
        assert_eq!(watch.check(Some(NEW), true), WatchAction::Back);
        watch.watching(NEW);
        assert_eq!(watch.check(Some(NEW), false), WatchAction::Keep);
        // Missing from the start, then created.
        let mut watch = FolderWatch::default();
        assert_eq!(watch.check(None, true), WatchAction::Missing);
        assert_eq!(watch.check(Some(NEW), true), WatchAction::Back);
    }

    #[test]
    fn renamed_away_and_back_unnoticed_is_rearmed_quietly() {
        let mut watch = watching(OLD);
        assert_eq!(watch.check(None, false), WatchAction::Lost);
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Arm);
    }

    #[test]
    fn a_watch_that_could_not_run_is_armed_at_the_next_look() {
        let mut watch = watching(OLD);
        watch.not_watching();
        assert_eq!(watch.check(Some(OLD), false), WatchAction::Arm);
        assert!(!watch.is_lost());
        // The folder is there but could not be read (and that was logged):
        // not "back", it never went away.
        let mut watch = watching(OLD);
        watch.not_watching();
        assert_eq!(watch.check(Some(OLD), true), WatchAction::Arm);
    }

    // Unix only: NTFS "tunnelling" may give a folder created under a name
    // just freed the old folder's creation time, so on Windows only the
    // removal report tells them apart (and Wine's mapping is its own).
    #[cfg(unix)]
    #[test]
    fn identity_of_real_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("import");
        std::fs::create_dir(&path).unwrap();
        let first = FolderId::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(first, FolderId::of(&std::fs::metadata(&path).unwrap()));
        // Kept while the first exists, so the new one cannot reuse its inode.
        std::fs::rename(&path, dir.path().join("old")).unwrap();
        std::fs::create_dir(&path).unwrap();
        let second = FolderId::of(&std::fs::metadata(&path).unwrap());
        assert_ne!(first, second);
        // Removed and created again: the inode is often reused, the
        // creation time (where kept) tells them apart.
        std::fs::remove_dir(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let third = FolderId::of(&std::fs::metadata(&path).unwrap());
        if std::fs::metadata(&path).unwrap().created().is_ok() {
            assert_ne!(second, third);
        }
    }
}
