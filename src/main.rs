/// mimalloc, not the system's malloc: at 10,000 certificates glibc's malloc took ~10-15 % of
/// `plan`'s CPU (frees and consolidation) and kept the configuration parse's freed memory
/// (see `certform::memory`); `validate` went from 0.19 to 0.08 s, `status` from ~0.3 to
/// ~0.2 s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    restore_default_sigpipe();
    certform::memory::configure();
    std::process::exit(certform::cli::main());
}

/// A reader that goes away (`certform status | head -1`) ends certform the way it ends `git`,
/// `ls` or Terraform: by `SIGPIPE`, quietly (the shell reports status 141), instead of a panic
/// on the next `println!` (Rust ignores `SIGPIPE` by default). Sockets are unaffected: the
/// standard library and tokio send with `MSG_NOSIGNAL`. An apply stopped this way is a crash it
/// already recovers from on the next run.
fn restore_default_sigpipe() {
    // SAFETY: called first thing in `main`, before any thread exists; `SIG_DFL` is a valid
    // disposition for `SIGPIPE` and no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
