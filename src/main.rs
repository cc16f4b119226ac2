//! The `gatehouse` command: `serve` and `verify`.

use clap::{Parser, Subcommand};
use gatehouse::log::{EventLog, LogError};
use gatehouse::{Application, Config, Settings};
use gatehouse_projections::State;
use std::path::PathBuf;
use std::process::ExitCode;

/// See Cargo.toml: replay and request handling allocate many small strings across threads.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "An event-sourced access-control server (JFrog Access REST dialect)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// Where the event log, snapshots and keys live.
        #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
        data_dir: PathBuf,
        /// Address to listen on (`127.0.0.1:0` picks a free port).
        #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8082")]
        listen: String,
        /// A TOML file of tunables (see README).
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Walk the hash chain, decode and replay every event; exit 0 when intact.
    Verify {
        #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve {
            data_dir,
            listen,
            config,
        } => serve(data_dir, listen, config),
        Cmd::Verify { data_dir } => verify(data_dir),
    }
}

fn serve(data_dir: PathBuf, listen: String, config: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = Settings {
        data_dir,
        listen,
        config,
    };
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone(), true).await?;
        let addr = settings
            .listen
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or("127.0.0.1")
            .to_string();
        // Tests and scripts read this line to learn the port (`--listen 127.0.0.1:0`).
        println!(
            "gatehouse listening on http://{addr}:{} as {}",
            app.port(),
            app.service_id()
        );
        app.run_until_stopped().await?;
        Ok::<(), gatehouse::app::StartError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("gatehouse: {e}");
            ExitCode::from(1)
        }
    }
}

fn verify(data_dir: PathBuf) -> ExitCode {
    if !data_dir.join("log").exists() {
        eprintln!("gatehouse: no event log in {}", data_dir.display());
        return ExitCode::from(2);
    }
    let log = match EventLog::open(&data_dir) {
        Ok(l) => l,
        Err(e) => return report_broken(e),
    };
    let mut state = State::default();
    match log.verify_with(|env| state.apply(&env)) {
        Ok(report) => {
            println!(
                "chain intact: {} events, head hash {}, state digest {}",
                report.events,
                hex(&report.head_hash),
                state.digest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => report_broken(e),
    }
}

fn report_broken(e: LogError) -> ExitCode {
    match e.position() {
        Some(seq) => println!("chain broken at position {seq}: {e}"),
        None => println!("cannot verify: {e}"),
    }
    ExitCode::from(1)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
