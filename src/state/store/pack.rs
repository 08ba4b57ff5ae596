//! A commit's new objects go into one pack, not one loose file each.
//!
//! libgit2 writes every blob and tree of a commit as its own loose object file (a temp file,
//! a link, an unlink, and later `git repack` reads them all back and removes them): a renewal
//! of 1,000 certificates made ~2,000 files that way. Instead, the commit's objects are written
//! to an in-memory object backend placed in front of the repository's own, and before the
//! branch moves they are written out as one pack with its index (`objects/pack/pack-<sum>`),
//! both fsynced and then their directory: a kill before that leaves nothing, a kill while the
//! indexer writes leaves its temp files or an index whose pack is missing (which git and
//! libgit2 skip), and a kill after it leaves a pack no ref names yet. Never a branch naming an
//! object that is not on disk.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use git2::{Buf, Indexer, Mempack, Odb, Oid, Repository};

/// Priority of the in-memory backend: above libgit2's loose (1) and packed (2) backends, so
/// every write lands in it (the first backend that can write takes it).
const MEMPACK_PRIORITY: i32 = 1000;

/// The in-memory backend receiving a commit's new objects.
pub(super) struct PendingObjects<'odb> {
    _mempack: Mempack<'odb>,
}

impl<'odb> PendingObjects<'odb> {
    /// From now on, every object written through `odb` (the repository's) stays in memory
    /// until [`PendingObjects::write_pack`]. Objects the repository already has are not
    /// written again (libgit2 looks every object up first).
    pub(super) fn attach(odb: &'odb Odb<'_>) -> Result<Self, git2::Error> {
        Ok(PendingObjects {
            _mempack: odb.add_new_mempack_backend(MEMPACK_PRIORITY)?,
        })
    }

    /// Write `objects` (the commit's new objects, held in memory) as one pack with its index
    /// under `objects/pack` of `git_dir`, durably (pack, index, then the directory). Naming an
    /// object the repository had already only repeats it in the new pack. The objects stay
    /// readable from memory afterwards as well.
    pub(super) fn write_pack(
        &self,
        repo: &Repository,
        git_dir: &Path,
        objects: &[Oid],
    ) -> Result<(), PackError> {
        // Only these objects: `Mempack::dump` would pack each commit's whole tree.
        let mut builder = repo.packbuilder().map_err(PackError::Git)?;
        // The delta search is the commit's main cost (~0.3 s of one processor for a renewal
        // of 1,000, at the end of the run where nothing else is left to do): spread it over
        // the processors. Nothing writes objects while the pack is built, so libgit2's
        // threads only read the in-memory backend.
        builder.set_threads(pack_threads());
        for id in objects {
            builder.insert_object(*id, None).map_err(PackError::Git)?;
        }
        let mut pack = Buf::new();
        builder.write_buf(&mut pack).map_err(PackError::Git)?;
        let directory = git_dir.join("objects").join("pack");
        fs::create_dir_all(&directory).map_err(PackError::Io)?;
        let mut indexer = Indexer::new(None, &directory, 0, false).map_err(PackError::Git)?;
        indexer.write_all(&pack).map_err(PackError::Io)?;
        let name = indexer.commit().map_err(PackError::Git)?;
        for extension in ["pack", "idx"] {
            let path = directory.join(format!("pack-{name}.{extension}"));
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(PackError::Io)?;
        }
        crate::atomic_file::sync_dir(&directory).map_err(PackError::Io)
    }
}

/// Threads for the pack's delta search: the processors there are, at most four (a commit's
/// pack is a few thousand objects; more threads each get too few to compare).
fn pack_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

/// Why a commit's pack could not be written.
#[derive(Debug)]
pub(super) enum PackError {
    Git(git2::Error),
    Io(io::Error),
}
