//! Shared mappings: named POSIX shared memory objects and anonymous `memfd`s, both
//! mapped `MAP_SHARED` through memmap2 so forked children and other processes see
//! the same bytes (a `MAP_PRIVATE` mapping would be copied on write after fork and
//! futexes in it would stop waking other processes).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A live `MAP_SHARED` read-write mapping; unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    map: memmap2::MmapRaw,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` shared and read-write.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<Mapping> {
        let map = memmap2::MmapOptions::new().len(len).map_raw(file)?;
        Ok(Mapping { map })
    }

    /// Base address (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(super::last_error())
    } else {
        Ok(rc)
    }
}

fn retry(mut f: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn into_file(fd: libc::c_int) -> File {
    // SAFETY: `fd` is a freshly opened descriptor that nothing else owns.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_len(file: &File, len: usize) -> io::Result<()> {
    file.set_len(u64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?)
}

/// Reserves the pages of the first `len` bytes of `file` (`posix_fallocate`).
/// A tmpfs that is full (or has a `size=` limit smaller than the object)
/// then refuses with `ENOSPC` here, where a sparse object would let the first
/// write to a missing page kill the writer with `SIGBUS`, at any later time
/// and in any process that maps it.
fn reserve(file: &File, len: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(len) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    if len == 0 {
        return Ok(());
    }
    loop {
        // SAFETY: the fd is owned by `file`, which is alive; posix_fallocate
        // returns an error number rather than setting errno.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Creates the shared memory object `name` (which must not exist) with permission
/// `mode`, sized `len` bytes and its pages reserved ([`reserve`]).
/// `O_EXCL|O_NOFOLLOW`; the mode is applied with `fchmod` so the process umask
/// cannot narrow or widen it.
///
/// The new object carries its *creation lock* (`flock(LOCK_EX)`, see
/// [`take_over_creation`]) from its first moment until every descriptor of this
/// open file is closed: the caller keeps one until the object is initialized.
/// The kernel drops the lock when the creator dies, so an opener that finds
/// an object never made ready can tell a creator at work from a dead one.
pub(crate) fn create_named(name: &CStr, mode: u32, len: usize) -> io::Result<File> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    for _ in 0..8 {
        // SAFETY: `name` is NUL-terminated; shm_open returns a new fd or -1.
        let fd = retry(|| unsafe { libc::shm_open(name.as_ptr(), flags, mode as libc::mode_t) })?;
        let file = into_file(fd);
        // SAFETY: `fd` is owned by `file`, which is alive.
        retry(|| unsafe { libc::flock(fd, libc::LOCK_EX) })?;
        // An opener that came between the create and the lock saw no creator
        // at work and may have removed the name as a dead creator's: then the
        // name is no longer this file, and the create starts again.
        let ours = file_id(&file)?.0;
        let named = open_readonly(name).and_then(|f| file_id(&f)).ok();
        if named.map(|(id, _)| id) != Some(ours) {
            continue;
        }
        // SAFETY: `fd` is owned by `file`, which is alive.
        let fix_mode = retry(|| unsafe { libc::fchmod(fd, mode as libc::mode_t) });
        let sized = fix_mode.and_then(|_| set_len(&file, len).map(|_| 0));
        if let Err(e) = sized.and_then(|_| reserve(&file, len)) {
            let _ = unlink_if_same(name, ours);
            return Err(e);
        }
        return Ok(file);
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// The creation lock of an object whose creator is gone (dead, or done),
/// held by an opener (see [`create_named`]): while it is held no creator
/// can be at work on this file, so an opener that finds it still not ready
/// may remove the name (a creator that lost the race to this opener sees its
/// name gone once it gets the lock, and starts again). Released on drop.
pub(crate) struct CreationTakeover<'a>(&'a File);

impl Drop for CreationTakeover<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        // SAFETY: the fd is owned by the borrowed file, which is alive.
        let _ = retry(|| unsafe { libc::flock(fd, libc::LOCK_UN) });
    }
}

/// Takes `file`'s creation lock if no creator holds it (non-blocking);
/// `None` while a live creator is still at work, or on any other error (the
/// caller then waits its bounded time, as it would for a creator).
pub(crate) fn take_over_creation(file: &File) -> Option<CreationTakeover<'_>> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: the fd is owned by `file`, which is alive.
    retry(|| unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) })
        .ok()
        .map(|_| CreationTakeover(file))
}

/// Opens the existing shared memory object `name` read-write.
pub(crate) fn open_named(name: &CStr) -> io::Result<File> {
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated; shm_open returns a new fd or -1.
    let fd = retry(|| unsafe { libc::shm_open(name.as_ptr(), flags, 0) })?;
    Ok(into_file(fd))
}

/// Opens the existing shared memory object `name` read-only, without following
/// a symlink and without blocking (a FIFO planted under the mount must not hang
/// the caller); the caller checks with [`file_id`] that it is a regular file.
pub(crate) fn open_readonly(name: &CStr) -> io::Result<File> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: `name` is NUL-terminated; shm_open returns a new fd or -1.
    let fd = retry(|| unsafe { libc::shm_open(name.as_ptr(), flags, 0) })?;
    Ok(into_file(fd))
}

/// Which file an open descriptor is: `(device, inode)`, and whether it is a
/// regular file.
pub(crate) fn file_id(file: &File) -> io::Result<((u64, u64), bool)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok(((m.dev(), m.ino()), m.file_type().is_file()))
}

/// Removes the name only if it still names the file `id` (a region unlinked and
/// created again under the same name by someone else is left alone). Returns
/// whether it removed it. The check and the unlink are two steps: a name
/// replaced between them is removed anyway (no syscall unlinks by inode).
pub(crate) fn unlink_if_same(name: &CStr, id: (u64, u64)) -> io::Result<bool> {
    let file = match open_readonly(name) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if file_id(&file)?.0 != id {
        return Ok(false);
    }
    match unlink_named(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The directory where glibc's `shm_open` keeps named objects.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// The names (with their leading `/`) of the entries directly under
/// [`SHM_DIR`] that are regular files, sorted. Not a libc call, but kept here
/// beside `shm_open`, which decides where the names live.
pub(crate) fn list_names() -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let Ok(entry) = entry else { continue };
        // `file_type` does not follow symlinks: only plain files are candidates.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let Some(n) = entry.file_name().to_str() {
            out.push(format!("/{n}"));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the name; existing mappings stay valid.
pub(crate) fn unlink_named(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    retry(|| unsafe { libc::shm_unlink(name.as_ptr()) }).map(|_| ())
}

/// An anonymous `memfd` of `len` bytes. Mapped shared, it is inherited by forked
/// children; its fd could also be passed to another process.
///
/// Sealed against shrinking (`F_SEAL_SHRINK`) once sized, and against further
/// seals (`F_SEAL_SEAL`): no process holding the fd (a forked child, or one it
/// was passed to) can `ftruncate` it under the mappings of the others, which
/// would make their next access to the lost pages die with `SIGBUS`.
pub(crate) fn memfd(len: usize) -> io::Result<File> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: the name is NUL-terminated; memfd_create returns a new fd or -1.
    let fd = retry(|| unsafe { libc::memfd_create(c"multiproc".as_ptr(), flags) })?;
    let file = into_file(fd);
    set_len(&file, len)?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: `fd` is owned by `file`, which is alive; F_ADD_SEALS takes an int.
    retry(|| unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) })?;
    Ok(file)
}

/// The seals on `file` (`F_GET_SEALS`).
#[cfg(test)]
pub(crate) fn seals(file: &File) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is owned by `file`, which is alive.
    retry(|| unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) })
}

/// Owner uid and permission bits of `file` (`fstat`).
pub(crate) fn owner_and_mode(file: &File) -> io::Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.uid(), m.mode() & 0o7777))
}

/// The calling process's effective uid.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The size of `file` in bytes.
pub(crate) fn file_len(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// A close-on-exec duplicate of `fd`, numbered 3 or above.
pub(crate) fn dup_cloexec(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is open for the borrow; F_DUPFD_CLOEXEC returns a new fd or -1.
    let new = retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `new` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Clears close-on-exec on `fd`. Async-signal-safe (one `fcntl`): for a
/// forked child between `fork` and `exec`.
pub(crate) fn clear_cloexec_raw(fd: libc::c_int) -> bool {
    // SAFETY: fcntl on any number is defined (EBADF for a closed one).
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) == 0 }
}

/// Sets close-on-exec on `fd` (so a spawned process's own children do not
/// inherit what it was handed).
pub(crate) fn set_cloexec_raw(fd: libc::c_int) -> bool {
    // SAFETY: fcntl on any number is defined (EBADF for a closed one).
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_refuses_to_shrink() {
        let f = memfd(3 * 4096).unwrap();
        let seals = seals(&f).unwrap();
        assert_ne!(seals & libc::F_SEAL_SHRINK, 0, "seals {seals:#x}");
        assert_ne!(seals & libc::F_SEAL_SEAL, 0, "seals {seals:#x}");
        let e = f.set_len(4096).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
        assert_eq!(file_len(&f).unwrap(), 3 * 4096);
        // Growing stays allowed (and harmless to existing mappings).
        f.set_len(4 * 4096).unwrap();
    }
}
