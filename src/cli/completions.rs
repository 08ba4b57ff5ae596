//! `certform completions` and `certform man`: shell completions and the manual page, both
//! generated from the clap definitions so they never drift from the commands.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, Context, Failure, EXIT_OK};

/// Print a shell completion script
///
/// For example: `certform completions bash > /etc/bash_completion.d/certform`
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the manual page (roff)
///
/// For example: `certform man > /usr/local/share/man/man1/certform.1`
#[derive(Debug, clap::Args)]
pub struct ManArgs {}

pub fn completions(_context: &Context, args: &CompletionsArgs) -> Result<i32, Failure> {
    let mut text = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "certform", &mut text);
    print(&text)
}

pub fn man(_context: &Context, _args: &ManArgs) -> Result<i32, Failure> {
    let mut text = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut text)
        .map_err(|e| Failure::new("cannot render the manual page").caused_by(e.to_string()))?;
    print(&text)
}

fn print(bytes: &[u8]) -> Result<i32, Failure> {
    std::io::stdout()
        .lock()
        .write_all(bytes)
        .map_err(|e| Failure::new("cannot write to standard output").caused_by(e.to_string()))?;
    Ok(EXIT_OK)
}
