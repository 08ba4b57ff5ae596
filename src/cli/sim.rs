//! `certform sim`: run a simulated CA API in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Context, Failure, EXIT_OK};
use crate::sim::{digicert, sectigo};

/// Run a simulated CA API in the foreground, as a sandbox for configs and tests
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub simulator: Simulator,
}

#[derive(Debug, clap::Subcommand)]
pub enum Simulator {
    /// Simulate DigiCert CertCentral (Services API v2)
    Digicert(DigicertArgs),
    /// Simulate Sectigo Certificate Manager (REST API, login/password headers)
    Sectigo(SectigoArgs),
}

#[derive(Debug, clap::Args)]
pub struct DigicertArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8780")]
    pub listen: SocketAddr,

    /// Seed file: API keys, products, organizations, domains, limits, faults (JSON, or TOML
    /// when the name ends in `.toml`); without it, built-in defaults
    #[arg(long)]
    pub seed: Option<PathBuf>,

    /// Run the rate-limit windows this many times faster than real time (the seed's
    /// `limits_time_scale`): at 20, CertCentral's 100 per 5 s and 1,000 per 3 min become 100
    /// per 0.25 s and 1,000 per 9 s
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limits_time_scale: Option<u32>,

    /// Write the simulator's root CA certificate (PEM) to this file
    #[arg(long, value_name = "FILE")]
    pub root_out: Option<PathBuf>,

    /// Start the simulator's clock at this time (RFC 3339); it runs on from there. Default:
    /// `CERTFORM_NOW` when set, so a certform pinned to a date and the simulator agree; else
    /// real time. `POST /_sim/clock` moves it later
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<time::OffsetDateTime>,
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(
        |_| format!("expected an RFC 3339 time such as `2027-01-01T00:00:00Z`, not `{text}`"),
    )
}

#[derive(Debug, clap::Args)]
pub struct SectigoArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub listen: SocketAddr,

    /// Seed file: users, profiles, organizations, domains, custom fields, workflow, limits,
    /// faults, quirks (JSON, or TOML when the name ends in `.toml`); without it, built-in
    /// defaults
    #[arg(long)]
    pub seed: Option<PathBuf>,

    /// Hold every request in `Requested` until approved (overrides the seed's workflow)
    #[arg(long)]
    pub manual_approval: bool,

    /// Seconds between approval and issuance (overrides the seed's workflow)
    #[arg(long, value_name = "SECONDS")]
    pub issue_delay: Option<u64>,

    /// Probability (0 to 1) of an injected server error per request (overrides the seed)
    #[arg(long, value_name = "RATE")]
    pub error_rate: Option<f64>,

    /// Write the simulator's root CA certificate (PEM) to this file
    #[arg(long, value_name = "FILE")]
    pub root_out: Option<PathBuf>,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    match &args.simulator {
        Simulator::Digicert(args) => run_digicert(context, args),
        Simulator::Sectigo(args) => run_sectigo(context, args),
    }
}

fn run_sectigo(context: &Context, args: &SectigoArgs) -> Result<i32, Failure> {
    let mut seed = match &args.seed {
        Some(path) => sectigo::Seed::load(path).map_err(|e| Failure::from_error(&e))?,
        None => sectigo::Seed::default(),
    };
    if args.manual_approval {
        seed.workflow.approval = sectigo::Approval::Manual;
    }
    if let Some(seconds) = args.issue_delay {
        seed.workflow.issue_delay_seconds = seconds;
    }
    if let Some(rate) = args.error_rate {
        seed.faults.error_rate = rate;
    }
    let runtime = context.runtime()?;
    runtime.block_on(async {
        let sim = sectigo::start(seed, args.listen).await.map_err(|e| {
            Failure::from_error(&e).hint("pick another address with `--listen 127.0.0.1:0`")
        })?;
        if let Some(path) = &args.root_out {
            crate::atomic_file::write(path, sim.root_pem().as_bytes(), 0o644).map_err(|e| {
                Failure::new(format!("cannot write the root CA to `{}`", path.display()))
                    .caused_by(e.to_string())
            })?;
        }
        println!("Sectigo Certificate Manager simulator");
        println!("  base URL:      {}", sim.base_url());
        println!("  customer URI:  {}", sim.customer_uri());
        println!("  admin:         {}", sim.admin_url());
        match &args.root_out {
            Some(path) => println!("  root CA:       {}", path.display()),
            None => println!("  root CA:       {}root.pem", sim.admin_url()),
        }
        println!("  users (test credentials, sent as `login` and `password` headers):");
        let users = sim.users();
        let width = users.iter().map(|user| user.login.len()).max().unwrap_or(0);
        for user in users {
            println!(
                "    {:<width$}  {:<10}  {}",
                user.login,
                user.role.as_str(),
                user.password
            );
        }
        println!("press Ctrl-C to stop");
        sim.wait().await.map_err(|e| Failure::from_error(&e))?;
        Ok(EXIT_OK)
    })
}

fn run_digicert(context: &Context, args: &DigicertArgs) -> Result<i32, Failure> {
    let mut seed = match &args.seed {
        Some(path) => digicert::Seed::load(path).map_err(|e| Failure::from_error(&e))?,
        None => digicert::Seed::default(),
    };
    if let Some(scale) = args.limits_time_scale {
        seed.limits_time_scale = scale;
    }
    let runtime = context.runtime()?;
    runtime.block_on(async {
        let sim = digicert::start(seed, args.listen).await.map_err(|e| {
            Failure::from_error(&e).hint("pick another address with `--listen 127.0.0.1:0`")
        })?;
        // `--now`, else the run's clock (`CERTFORM_NOW` when pinned; real time otherwise).
        let start = args.now.unwrap_or(context.now);
        if !sim.set_now(start) {
            return Err(Failure::new(format!(
                "cannot start the simulator's clock at {start}: it moves at most 100 years from real time"
            )));
        }
        if let Some(path) = &args.root_out {
            // A fresh clone has no `out/` yet: create the file's directory.
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            parent
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| crate::atomic_file::write(path, sim.root_pem().as_bytes(), 0o644))
                .map_err(|e| {
                Failure::new(format!("cannot write the root CA to `{}`", path.display()))
                    .caused_by(e.to_string())
            })?;
        }
        println!("DigiCert CertCentral simulator");
        println!("  base URL:  {}", sim.base_url());
        println!("  admin:     {}", sim.admin_url());
        println!("  clock:     {} (`POST {}clock` moves it)", sim.now(), sim.admin_url());
        match &args.root_out {
            Some(path) => println!("  root CA:   {}", path.display()),
            None => println!("  root CA:   {}root.pem", sim.admin_url()),
        }
        println!("  API keys (test keys, send as `X-DC-DEVKEY`):");
        let keys = sim.api_keys();
        let width = keys.iter().map(|key| key.name.len()).max().unwrap_or(0);
        let role_width = keys
            .iter()
            .map(|key| key.role.as_str().len())
            .max()
            .unwrap_or(0);
        for key in keys {
            println!(
                "    {:<width$}  {:<role_width$}  {}",
                key.name,
                key.role.as_str(),
                key.key
            );
        }
        println!("press Ctrl-C to stop");
        sim.wait().await.map_err(|e| Failure::from_error(&e))?;
        Ok(EXIT_OK)
    })
}
