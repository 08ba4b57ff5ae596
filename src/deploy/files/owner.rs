//! Owners of deployed files: user and group names (or numeric ids) to ids, and `chown`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A user name (or numeric id) to a uid; `None` when no such user exists.
pub(super) fn lookup_user(user: &str) -> io::Result<Option<u32>> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(Some(uid));
    }
    let Ok(name) = CString::new(user) else {
        return Ok(None);
    };
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: `passwd` is plain old data; all-zero is a valid (empty) value to be filled in.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live storage of the stated size; the strings `entry`
        // points into live in `buffer`, and only `pw_uid` (a copy) is used afterwards.
        let code = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if code == libc::ERANGE && buffer.len() < (1 << 20) {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 && code != libc::ENOENT {
            return Err(io::Error::from_raw_os_error(code));
        }
        return Ok((!result.is_null()).then_some(entry.pw_uid));
    }
}

/// A group name (or numeric id) to a gid; `None` when no such group exists.
pub(super) fn lookup_group(group: &str) -> io::Result<Option<u32>> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Some(gid));
    }
    let Ok(name) = CString::new(group) else {
        return Ok(None);
    };
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: `group` is plain old data; all-zero is a valid (empty) value to be filled in.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `lookup_user`; only `gr_gid` (a copy) is used afterwards.
        let code = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if code == libc::ERANGE && buffer.len() < (1 << 20) {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 && code != libc::ENOENT {
            return Err(io::Error::from_raw_os_error(code));
        }
        return Ok((!result.is_null()).then_some(entry.gr_gid));
    }
}

/// Change owner and/or group of `path` (`None` leaves it as is).
pub(super) fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // `(uid_t)-1` / `(gid_t)-1` mean "leave unchanged".
    let uid = uid.unwrap_or(libc::uid_t::MAX);
    let gid = gid.unwrap_or(libc::gid_t::MAX);
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::chown(path.as_ptr(), uid, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
