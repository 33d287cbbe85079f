//! `stoep`: the customer portal's one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use server::config::Settings;
use server::startup::{self, Application};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stoep: a customer portal for small businesses (bookings, deposits, documents, email), which
/// keeps the business's other tools in step and shows staff when a connection fails.
#[derive(Parser)]
#[command(name = "stoep", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server and the background worker in one process (the default).
    Serve {
        /// Run the web server only; start `stoep worker` separately.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run the background worker alone (several may run against one PostgreSQL database).
    Worker {
        /// Run every due job, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Administer accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// CRM sync.
    Crm {
        #[command(subcommand)]
        command: CrmCommand,
    },
}

#[derive(Subcommand)]
enum CrmCommand {
    /// Push every customer to the CRM again: marks them all changed, in chunks; the worker sends
    /// them in batches within the CRM's rate limit. Safe to stop and run again; `--after` resumes.
    Resync {
        /// Start after this customer id (printed as progress).
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin, or promote an existing account, and print a one-time password.
    Create {
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// The admin's name (for a new account).
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Read the password from this environment variable instead of generating one.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Enrol two-step verification with the base32 secret in this environment variable
        /// (for automated set-ups); otherwise the admin sets it up at first sign-in.
        #[arg(long, value_name = "VAR")]
        totp_secret_env: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stoep: {e}");
            return ExitCode::from(2);
        }
    };
    server::telemetry::init(&settings.log_format, &settings.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stoep: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(
        cli.command.unwrap_or(Command::Serve { no_worker: false }),
        settings,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the problem; no backtrace.
            let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("stoep: {}", causes.join(": "));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { no_worker } => {
            let app = Application::build(settings, !no_worker).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            app.run_until_stopped(shutdown).await
        }
        Command::Worker { once } => {
            let services = startup::prepare(settings, startup::Overrides::default()).await?;
            let worker = startup::worker(&services);
            if once {
                let n = worker.drain().await?;
                println!("ran {n} job(s)");
                return Ok(());
            }
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            worker.run(shutdown).await;
            Ok(())
        }
        Command::Crm {
            command: CrmCommand::Resync { after },
        } => {
            let db = domain::database::connect(&settings.database_url(), 2).await?;
            domain::database::migrate(&db).await?;
            let mut last = after;
            let mut total = 0usize;
            while let Some(id) = domain::crm::mark_all_changed(&db, last, 500).await? {
                total += 1;
                last = id;
                println!("marked customers up to id {id} (resume with --after {id})");
            }
            println!(
                "done: {} chunk(s) marked; a running worker pushes them in batches ({}).",
                total,
                if settings.crm.provider == "none" {
                    "no CRM is configured"
                } else {
                    settings.crm.provider.as_str()
                }
            );
            Ok(())
        }
        Command::Migrate => {
            let db = domain::database::connect(&settings.database_url(), 2).await?;
            domain::database::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    name,
                    password_env,
                    totp_secret_env,
                },
        } => {
            let db = domain::database::connect(&settings.database_url(), 2).await?;
            domain::database::migrate(&db).await?;
            let (password, generated) = match password_env {
                Some(var) => (
                    std::env::var(&var)
                        .map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?,
                    false,
                ),
                None => (domain::auth::random_password(), true),
            };
            let totp = match totp_secret_env {
                Some(var) => Some(
                    std::env::var(&var)
                        .map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?,
                ),
                None => None,
            };
            let (id, created) = domain::auth::create_or_promote_admin(
                &db,
                &email,
                &name,
                SecretString::from(password.clone()),
                totp.as_deref(),
                generated,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{} admin {} (user {id}).",
                if created { "Created" } else { "Promoted" },
                email.trim().to_lowercase()
            );
            if generated {
                println!(
                    "One-time password (valid for 24 hours, replaced at first sign-in): {password}"
                );
                println!(
                    "Sign in at {}/signin, choose your own password, and set up two-step verification.",
                    settings.public_url_trimmed()
                );
            }
            Ok(())
        }
    }
}

/// Cancels `token` on SIGTERM or Ctrl-C.
async fn stop_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests and jobs");
    token.cancel();
}
