fn main() {
    restore_default_sigpipe();
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
