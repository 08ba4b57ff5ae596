//! Command-line interface: clap commands that parse, call the library, print, and map errors
//! to exit codes. No business logic lives here.

mod apply;
mod ca;
mod completions;
mod import;
mod init;
mod plan;
mod schema;
mod sim;
mod state;
mod status;
mod unlock;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::Diagnostic;
use crate::workspace;

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_CHANGES: i32 = 2;
pub const EXIT_PARTIAL: i32 = 3;

/// Plan and apply TLS certificates declared in TOML, with state kept in git
#[derive(Debug, Parser)]
#[command(name = "certform", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file or directory (every *.toml/*.yaml in it is merged)
    #[arg(
        short,
        long,
        global = true,
        default_value = ".",
        env = "CERTFORM_CONFIG"
    )]
    pub config: PathBuf,

    /// When to colour output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
    Validate(validate::Args),
    Plan(plan::Args),
    Apply(apply::Args),
    Status(status::Args),
    State(state::Args),
    Unlock(unlock::Args),
    Schema(schema::Args),
    Ca(ca::Args),
    Import(import::Args),
    Sim(sim::Args),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

/// Parse the command line, run, and return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                EXIT_ERROR
            } else {
                EXIT_OK
            };
            let _ = error.print();
            return code;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CERTFORM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let context = match Context::new(&cli) {
        Ok(context) => context,
        Err(failure) => return failure.report(),
    };
    let result = match &cli.command {
        Command::Init(args) => init::run(&context, args),
        Command::Validate(args) => validate::run(&context, args),
        Command::Plan(args) => plan::run(&context, args),
        Command::Apply(args) => apply::run(&context, args),
        Command::Status(args) => status::run(&context, args),
        Command::State(args) => state::run(&context, args),
        Command::Unlock(args) => unlock::run(&context, args),
        Command::Schema(args) => schema::run(&context, args),
        Command::Ca(args) => ca::run(&context, args),
        Command::Import(args) => import::run(&context, args),
        Command::Sim(args) => sim::run(&context, args),
        Command::Completions(args) => completions::completions(&context, args),
        Command::Man(args) => completions::man(&context, args),
    };
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}

/// Settings every command shares.
pub struct Context {
    pub config_path: PathBuf,
    pub color: bool,
    pub now: OffsetDateTime,
}

impl Context {
    fn new(cli: &Cli) -> Result<Self, Failure> {
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        let now = match std::env::var("CERTFORM_NOW") {
            Ok(text) if !text.is_empty() => {
                OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| {
                    Failure::new(format!("`CERTFORM_NOW` is not an RFC 3339 time: `{text}`"))
                        .caused_by(e.to_string())
                })?
            }
            _ => OffsetDateTime::now_utc(),
        };
        Ok(Self {
            config_path: cli.config.clone(),
            color,
            now,
        })
    }

    /// Load the workspace, reporting invalid configuration with locations.
    pub fn workspace(&self) -> Result<workspace::Workspace, Failure> {
        let workspace =
            workspace::Workspace::load(&self.config_path, self.now).map_err(Failure::from)?;
        self.print_config_warnings(&workspace);
        Ok(workspace)
    }

    /// `workspace`, reading the state while the configuration is validated
    /// (`Workspace::load_reading_state`): `Workspace::take_state` gives it.
    pub fn workspace_reading_state(
        &self,
    ) -> Result<(workspace::Workspace, Option<workspace::EarlyState>), Failure> {
        let (workspace, early) =
            workspace::Workspace::load_reading_state(&self.config_path, self.now)
                .map_err(Failure::from)?;
        self.print_config_warnings(&workspace);
        Ok((workspace, early))
    }

    fn print_config_warnings(&self, workspace: &workspace::Workspace) {
        for warning in &workspace.config.warnings {
            eprintln!(
                "{}: {}",
                self.paint("\x1b[33m", "warning"),
                crate::config::escaped(&warning.to_string())
            );
        }
    }

    pub fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A tokio runtime for commands that talk to CAs.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, Failure> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new("cannot start the async runtime").caused_by(e.to_string()))
    }
}

/// An error for the user: message, causes, hint, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
    pub code: i32,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            diagnostics: Vec::new(),
            code: EXIT_ERROR,
        }
    }

    pub fn caused_by(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// From any error with a source chain.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut failure = Self::new(error.to_string());
        failure.hint = error
            .downcast_ref::<crate::state::Error>()
            .and_then(crate::state::Error::hint);
        let mut ca_hint = error
            .downcast_ref::<crate::ca::CaError>()
            .and_then(crate::ca::CaError::hint);
        let mut source = error.source();
        while let Some(cause) = source {
            failure.causes.push(cause.to_string());
            if ca_hint.is_none() {
                ca_hint = cause
                    .downcast_ref::<crate::ca::CaError>()
                    .and_then(crate::ca::CaError::hint);
            }
            source = cause.source();
        }
        if failure.hint.is_none() {
            failure.hint = ca_hint;
        }
        failure
    }

    /// Print to stderr; names echoed in any part are escaped (`config::escaped`), so no name
    /// can forge a line or reorder one. Only hints keep their line breaks.
    fn report(&self) -> i32 {
        for diagnostic in &self.diagnostics {
            eprintln!(
                "error: {}",
                crate::config::escaped(&format!(
                    "{}: {}{}",
                    diagnostic.location,
                    key_prefix(diagnostic),
                    diagnostic.message
                ))
            );
            if let Some(hint) = &diagnostic.hint {
                eprintln!("  hint: {}", escaped_lines(hint));
            }
        }
        eprintln!("error: {}", crate::config::escaped(&self.message));
        for cause in &self.causes {
            eprintln!("caused by: {}", crate::config::escaped(cause));
        }
        if let Some(hint) = &self.hint {
            eprintln!("hint: {}", escaped_lines(hint));
        }
        self.code
    }
}

/// `text` with control and bidirectional characters escaped (`config::escaped`), keeping the
/// line breaks of multi-line hints.
pub fn escaped_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| crate::config::escaped(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn key_prefix(diagnostic: &Diagnostic) -> String {
    if diagnostic.key.is_empty() {
        String::new()
    } else {
        format!("`{}`: ", diagnostic.key)
    }
}

impl From<workspace::Error> for Failure {
    fn from(error: workspace::Error) -> Self {
        match error {
            workspace::Error::Invalid(diagnostics) => {
                let mut failure = Failure::new(format!(
                    "configuration is invalid ({} problem{})",
                    diagnostics.len(),
                    if diagnostics.len() == 1 { "" } else { "s" }
                ));
                failure.diagnostics = diagnostics;
                failure
            }
            too_large @ workspace::Error::TooLarge { .. } => {
                Failure::from_error(&too_large).hint(format!(
                    "if the file is meant to be this large, set `{}` to a larger number of bytes",
                    workspace::MAX_CONFIG_BYTES_VAR
                ))
            }
            other => Failure::from_error(&other),
        }
    }
}

impl From<workspace::RunError> for Failure {
    fn from(error: workspace::RunError) -> Self {
        let hint = match &error {
            workspace::RunError::State(state) => unlock::lock_hint(state),
            workspace::RunError::Selection(unknown) => unknown.hint.clone(),
            _ => None,
        };
        let failure = match error {
            workspace::RunError::Workspace(inner) => Failure::from(inner),
            workspace::RunError::State(inner)
            | workspace::RunError::Apply(crate::apply::Error::State(inner)) => {
                Failure::from_error(&inner)
            }
            workspace::RunError::Ca(inner) => Failure::from_error(&inner),
            workspace::RunError::Dns(inner) => Failure::from_error(&inner),
            workspace::RunError::Apply(inner) => Failure::from_error(&inner),
            workspace::RunError::Selection(inner) => Failure::from_error(&inner),
            workspace::RunError::SavedPlan(refusal) => {
                Failure::new(refusal.to_string()).hint(refusal.hint())
            }
        };
        match hint {
            Some(hint) => failure.hint(hint),
            None => failure,
        }
    }
}

/// Ask `question` on the terminal; only `yes` accepts (anything else is `cancelled`). Off a
/// terminal nothing is asked: `refused` with `hint` (the flag that skips the question).
pub(crate) fn ask_yes(
    question: &str,
    refused: &str,
    hint: &str,
    cancelled: &str,
) -> Result<(), Failure> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(format!(
            "{refused} without confirmation: standard input is not a terminal"
        ))
        .hint(hint.to_string()));
    }
    print!("\n{question} Only `yes` will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new("cannot read the answer").caused_by(e.to_string()))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::new(cancelled.to_string()))
    }
}
