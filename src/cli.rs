//! The command line: clap definitions, one handler per subcommand, and the mapping
//! from errors to exit codes.
//!
//! Results go to stdout; logs and errors go to stderr. Each error is printed once,
//! as `error: <context>: <problem>`, followed by `hint: <fix>` when one is likely.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::engine::{CheckResult, Engine, InputReport, StageReport};
use crate::error::Error;
use crate::job::{self, JobPlan};
use crate::logging::LogFormat;
use crate::progress::Progress;
use crate::publish::{Manifest, ManifestColumn, ManifestInput, Publisher};
use crate::summary::{OutputSummary, RunSummary, StageSummary};

/// Prints one line of results to stdout. A closed stdout (`cra run ... | head`)
/// must not turn a published run into a failure, so write errors are ignored.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stdout(), "{}", crate::redact::text(&line));
    }};
}

/// Batch job runner for customer relationship analytics.
#[derive(Debug, Parser)]
#[command(name = "cra", version, about, long_about = None)]
struct Cli {
    /// Logs more: -v for debug, -vv for trace. RUST_LOG overrides both.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Logs only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Log format on stderr: text, or json for one object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a job and publishes its outputs.
    Run(RunArgs),
    /// Checks a job without running it: every stage, output and check is planned,
    /// Parquet footers are read, no data rows, and nothing is written.
    Validate(ValidateArgs),
    /// Prints the logical and physical plan of each stage; with --analyze, runs
    /// each stage once and shows its operators' metrics. Writes no output.
    Explain(ExplainArgs),
    /// Lists the SQL functions cra adds, with signatures and docs.
    Functions,
    /// Writes synthetic transactions, drawn from the BG/NBD purchase process with
    /// Gamma-Gamma spend at the CDNOW fits, in the columns of the CDNOW data.
    Generate(GenerateArgs),
    /// Runs a Ballista scheduler with every cra SQL function, for
    /// `cra run --cluster`. Runs until stopped.
    // Negative numbers then reach the flags' parsers, whose errors name the flag.
    #[command(allow_negative_numbers = true)]
    Scheduler(SchedulerArgs),
    /// Runs a Ballista executor with every cra SQL function, which registers with
    /// the scheduler and runs its tasks. Runs until stopped.
    #[command(allow_negative_numbers = true)]
    Executor(ExecutorArgs),
}

/// Parses a port of a cluster process. Port 0 would have the system choose
/// one, which Ballista would then announce as 0.
fn port_parser() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(1..)
}

#[derive(Debug, Args)]
struct SchedulerArgs {
    /// Host or address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,

    /// Port of the scheduler's gRPC service, for clients and executors.
    #[arg(long, default_value_t = 50050, value_parser = port_parser())]
    bind_port: u16,

    /// Host that executors and clients reach the scheduler at; --bind-host
    /// otherwise.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    external_host: Option<String>,

    /// Seconds without a heartbeat after which an executor counts as lost and its
    /// tasks run again on the others.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    executor_timeout_seconds: u64,

    /// Seconds after a job ends before its shuffle files are removed from the
    /// executors; 0 keeps them.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    finished_job_data_clean_up_interval_seconds: u64,

    /// Seconds a running job may go without a running task before the
    /// scheduler cancels it as stalled; 0 never cancels.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    stalled_job_timeout_seconds: u64,
}

#[derive(Debug, Args)]
struct ExecutorArgs {
    /// Host or address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,

    /// Port of the Arrow Flight service that serves shuffle data and results.
    #[arg(long, default_value_t = 50051, value_parser = port_parser())]
    bind_port: u16,

    /// Port of the gRPC service that the scheduler sends tasks to.
    #[arg(long, default_value_t = 50052, value_parser = port_parser())]
    bind_grpc_port: u16,

    /// Host that the scheduler, clients and other executors reach this executor
    /// at; --bind-host otherwise.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    external_host: Option<String>,

    /// Host of the scheduler.
    #[arg(
        long,
        default_value = "127.0.0.1",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    scheduler_host: String,

    /// Port of the scheduler.
    #[arg(long, default_value_t = 50050, value_parser = port_parser())]
    scheduler_port: u16,

    /// Folder for shuffle files and spills; cra-executor-PORT in the system's
    /// temporary folder otherwise.
    #[arg(long, value_name = "PATH")]
    work_dir: Option<PathBuf>,

    /// Tasks run at once, at most 65535; 0 means the number of cores.
    #[arg(long, value_name = "N", default_value_t = 0)]
    concurrent_tasks: u16,

    /// Seconds to wait for the scheduler to answer at start; the executor exits
    /// 1 after that.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    scheduler_connect_timeout_seconds: u64,

    /// Age in seconds after which the executor removes a job's shuffle files
    /// that the scheduler has not had removed, such as those of a scheduler
    /// that stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = 86400)]
    job_data_ttl_seconds: u64,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Number of customers.
    #[arg(long)]
    customers: u64,

    /// Folder to write the Parquet files and _generator.json into.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,

    /// Seed of the random streams; the same seed gives the same data.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Number of Parquet files.
    #[arg(long, default_value_t = 1)]
    files: usize,

    /// Replaces a folder that contains files but no earlier generate output.
    #[arg(long)]
    force: bool,
}

/// Execution settings, over the job's `engine:` section.
#[derive(Debug, Clone, Args)]
struct EngineArgs {
    /// Memory that sorts, aggregations and joins may hold before they spill, such
    /// as 4G or 512M.
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,

    /// Folder for spill files; the system's temporary folder otherwise.
    #[arg(long, value_name = "PATH")]
    spill_dir: Option<PathBuf>,

    /// Partitions DataFusion splits each plan into; the number of cores otherwise.
    #[arg(long, value_name = "N")]
    target_partitions: Option<usize>,

    /// Rows per record batch; 8192 otherwise.
    #[arg(long, value_name = "ROWS")]
    batch_size: Option<usize>,
}

impl EngineArgs {
    /// Applies the flags over the job's settings.
    fn apply(&self, job: &mut JobPlan) -> Result<(), Error> {
        if let Some(text) = &self.memory_limit {
            let bytes = crate::job::plan::parse_size(text).map_err(|message| {
                Error::invalid(format!("--memory-limit: {message}"))
            })?;
            job.engine.memory_limit = Some(bytes);
        }
        if let Some(dir) = &self.spill_dir {
            job.engine.spill_dir =
                Some(std::path::absolute(dir).unwrap_or_else(|_| dir.clone()));
        }
        for (flag, value, slot, max) in [
            (
                "--target-partitions",
                self.target_partitions,
                &mut job.engine.target_partitions,
                crate::job::plan::MAX_TARGET_PARTITIONS,
            ),
            (
                "--batch-size",
                self.batch_size,
                &mut job.engine.batch_size,
                crate::job::plan::MAX_BATCH_SIZE,
            ),
        ] {
            if let Some(number) = value {
                let checked = crate::job::plan::check_engine_count(flag, number, max);
                *slot = Some(checked.map_err(Error::invalid)?);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Job file (YAML).
    job: String,

    /// Sets a parameter, parsed by its declared type. Repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,

    /// Replaces an output folder even when it contains no earlier cra output.
    #[arg(long)]
    force: bool,

    /// Writes a JSON summary of the run to PATH when it ends, also on failure.
    #[arg(long, value_name = "PATH")]
    summary_file: Option<PathBuf>,

    /// Run id to use instead of a new one: letters, digits, '_' and '-', at most
    /// 64 characters.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,

    /// Runs the stages and outputs on the Ballista cluster whose scheduler is at
    /// URL (df://HOST:PORT). Inputs and outputs must be on storage every executor
    /// reaches.
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// Stops the run after SECONDS, as SIGTERM would: exit 1 and nothing
    /// published; on a cluster its jobs are cancelled. A commit that has started
    /// runs to its end.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,

    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// Job file (YAML).
    job: String,

    /// Explains only this stage; the stages before it are registered as in a run.
    #[arg(long, value_name = "NAME")]
    stage: Option<String>,

    /// Runs each explained stage and shows rows, time and spill per operator.
    #[arg(long)]
    analyze: bool,

    /// Sets a parameter, parsed by its declared type. Repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,

    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Job file (YAML).
    job: String,

    /// Also checks that every bucket the job names can be reached, listed and
    /// written with its settings, by writing and deleting one small object
    /// beside each output.
    #[arg(long)]
    check_storage: bool,

    /// Sets a parameter, parsed by its declared type. Repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,

    #[command(flatten)]
    engine: EngineArgs,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
        }
    };
    let progress = Progress::on_terminal(
        cli.log_format == LogFormat::Text
            && !cli.quiet
            && cli.verbose == 0
            && std::env::var_os("RUST_LOG").is_none(),
    );
    let cluster_process =
        matches!(cli.command, Command::Scheduler(_) | Command::Executor(_));
    crate::logging::init_for(
        cli.verbose,
        cli.quiet,
        cli.log_format,
        progress.is_shown(),
        cluster_process,
    );

    let result = match cli.command {
        Command::Functions => {
            print_functions();
            Ok(())
        }
        Command::Run(args) => on_large_stack(move || block_on(run(args, progress))),
        Command::Validate(args) => on_large_stack(move || block_on(validate(args))),
        Command::Explain(args) => on_large_stack(move || block_on(explain(args))),
        Command::Generate(args) => generate(args),
        Command::Scheduler(args) => on_large_stack(move || {
            block_on(crate::cluster::run_scheduler(
                crate::cluster::SchedulerSettings {
                    bind_host: args.bind_host,
                    bind_port: args.bind_port,
                    external_host: args.external_host,
                    executor_timeout_seconds: args.executor_timeout_seconds,
                    finished_job_data_clean_up_interval_seconds: args
                        .finished_job_data_clean_up_interval_seconds,
                    stalled_job_timeout: Duration::from_secs(
                        args.stalled_job_timeout_seconds,
                    ),
                },
            ))
        }),
        Command::Executor(args) => on_large_stack(move || {
            let work_dir = args.work_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("cra-executor-{}", args.bind_port))
            });
            block_on(crate::cluster::run_executor(
                crate::cluster::ExecutorSettings {
                    bind_host: args.bind_host,
                    bind_port: args.bind_port,
                    bind_grpc_port: args.bind_grpc_port,
                    external_host: args.external_host,
                    scheduler_host: args.scheduler_host,
                    scheduler_port: args.scheduler_port,
                    work_dir,
                    concurrent_tasks: usize::from(args.concurrent_tasks),
                    scheduler_connect_timeout: Duration::from_secs(
                        args.scheduler_connect_timeout_seconds,
                    ),
                    job_data_ttl_seconds: args.job_data_ttl_seconds,
                },
            ))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::from(error.kind().code())
        }
    }
}

/// Stack size of the threads that plan and run a job. DataFusion plans deeply
/// nested SQL expressions recursively, and the 2 MiB default of worker threads
/// overflows at a few thousand terms.
const STACK_BYTES: usize = 64 << 20;

fn block_on(future: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_BYTES)
        .build()
        .map_err(|error| {
            Error::run(format!("cannot start the async runtime: {error}"))
        })?;
    // `run` handles SIGINT and SIGTERM itself, to write its summary; the other
    // commands write nothing and end on them as any process does.
    let result = runtime.block_on(future);
    // A worker thread may still be inside a long function call after an interrupt.
    // Waiting for it would delay the exit, so the runtime is left to the exit.
    runtime.shutdown_background();
    result
}

/// Runs `work` on a thread with a stack of [`STACK_BYTES`], because the job's SQL
/// is parsed and planned on the thread that drives the runtime.
fn on_large_stack(
    work: impl FnOnce() -> Result<(), Error> + Send + 'static,
) -> Result<(), Error> {
    let thread = std::thread::Builder::new()
        .name("cra-main".to_string())
        .stack_size(STACK_BYTES)
        .spawn(work)
        .map_err(|error| Error::run(format!("cannot start the main thread: {error}")))?;
    thread.join().unwrap_or_else(|_| {
        Err(Error::run(
            "internal error: the run stopped on a panic; this is a bug in cra",
        ))
    })
}

/// Time an interrupted cluster run waits for the cluster to stop its jobs.
const CLUSTER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops a run on the cluster, `cause` (such as "interrupted by SIGTERM"): cancels
/// its cluster jobs and keeps the run going until it fails, so that it removes
/// its staging after the jobs have ended. A second signal, or the run not ending
/// within [`CLUSTER_STOP_TIMEOUT`], ends the wait.
async fn stop_cluster_run(
    url: &str,
    cause: &str,
    mut job: std::pin::Pin<&mut impl Future<Output = Result<(), Error>>>,
) -> Result<(), Error> {
    tracing::warn!("run {cause}; cancelling its cluster jobs");
    let stop = crate::cluster::stop_jobs(url);
    let deadline = tokio::time::sleep(CLUSTER_STOP_TIMEOUT);
    tokio::pin!(stop, deadline);
    let mut stopped = false;
    let leftover_hint = "the next run of the job removes what those jobs leave beside the \
                         outputs";
    loop {
        tokio::select! {
            // The run fails once its cluster job is cancelled, because it starts
            // no other job and does not commit.
            result = &mut job => {
                // The run had committed before the cancel reached it.
                if result.is_ok() {
                    return result;
                }
                break;
            }
            _ = &mut stop, if !stopped => stopped = true,
            _ = &mut deadline => {
                let running = crate::cluster::running_jobs();
                return Err(Error::run(format!(
                    "run {cause}; nothing was published, but the run did not end within \
                     {} s{}",
                    CLUSTER_STOP_TIMEOUT.as_secs(),
                    match running.is_empty() {
                        true => String::new(),
                        false => format!(
                            ": the scheduler at {url} had not ended these cluster jobs: {}",
                            running.join(", ")
                        ),
                    }
                ))
                .with_hint(leftover_hint));
            }
            _ = interrupted() => {
                let running = crate::cluster::running_jobs();
                let state = match running.is_empty() {
                    true => String::new(),
                    false => format!(
                        ", and the cluster had not confirmed the end of these cancelled jobs: {}",
                        running.join(", ")
                    ),
                };
                return Err(Error::run(format!(
                    "run {cause}, then interrupted again; nothing was published{state}"
                ))
                .with_hint(leftover_hint));
            }
        }
    }
    let cancelled = crate::cluster::cancelled_jobs();
    Err(Error::run(match cancelled.is_empty() {
        true => format!("run {cause}; nothing was published"),
        false => format!(
            "run {cause}; cluster jobs {} were cancelled and nothing was published",
            cancelled.join(", ")
        ),
    }))
}

/// Waits for SIGINT or SIGTERM; dropping the run then removes its staging.
pub(crate) async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Prints each problem of `error` once: as `error:` and `hint:` lines, or with
/// JSON logs as one error event each, so stderr stays one format.
fn print_error(error: &Error) {
    use std::io::Write as _;
    for problem in error.problems() {
        if crate::logging::is_json() {
            crate::logging::write_json_error(problem.message(), problem.hint());
            continue;
        }
        // A closed stderr must not turn into a panic; there is nowhere else to write.
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "error: {}", crate::redact::text(problem.message()));
        if let Some(hint) = problem.hint() {
            let _ = writeln!(stderr, "hint: {}", crate::redact::text(hint));
        }
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        tracing::debug!(cause = %cause, "error source");
        source = cause.source();
    }
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_string());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        use std::io::Write as _;
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "error: internal error: {payload}{location}");
        let _ = writeln!(
            stderr,
            "hint: this is a bug in cra; please report it with the job file"
        );
    }));
}

fn print_functions() {
    for doc in crate::functions::catalogue() {
        let kind = match doc.kind {
            crate::functions::FunctionKind::Scalar => "scalar",
            crate::functions::FunctionKind::Aggregate => "aggregate",
        };
        out!("{}  ({kind})", doc.signature);
        out!("    {}", doc.summary);
        out!("    example: {}", doc.example);
    }
}

/// Splits `--param name=value` arguments.
fn parse_overrides(params: &[String]) -> Result<Vec<(String, String)>, Error> {
    params
        .iter()
        .map(|param| match param.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), value.to_string()))
            }
            _ => Err(
                Error::invalid(format!("--param '{param}' is not NAME=VALUE"))
                    .with_hint("write --param as_of=1997-09-30"),
            ),
        })
        .collect()
}

/// Returns a run id: UTC time and 8 random hex digits, safe in folder names.
fn new_run_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{now}-{}", &random[..8])
}

/// Checks a `--run-id` value: it names staging folders, so it must be safe in a
/// file name.
fn check_run_id(id: &str) -> Result<String, Error> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if valid {
        Ok(id.to_string())
    } else {
        Err(
            Error::invalid(format!("--run-id '{id}' is not a valid run id"))
                .with_hint("use 1 to 64 letters, digits, '_' and '-'"),
        )
    }
}

async fn validate(args: ValidateArgs) -> Result<(), Error> {
    let started = Instant::now();
    let overrides = parse_overrides(&args.params)?;
    let mut job = job::load(&args.job, &overrides)?;
    args.engine.apply(&mut job)?;
    // validate writes nothing, so the spill folder is checked, not created.
    crate::engine::check_spill_dir(&job)?;
    job.engine.spill_dir = None;
    let engine = Engine::new(&job)?;
    if args.check_storage {
        check_storage(&job, engine.stores()).await?;
    }
    let inputs = engine.prepare(&job).await?;
    let checks: usize = job.outputs.iter().map(|o| o.checks.len()).sum();
    out!(
        "job {} is valid: {} inputs ({} files), {} stages, {} outputs, {checks} checks \
         ({:.2} s)",
        job.name,
        inputs.len(),
        inputs.iter().map(|i| i.files).sum::<usize>(),
        job.stages.len(),
        job.outputs.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn generate(args: GenerateArgs) -> Result<(), Error> {
    let started = Instant::now();
    let metadata = crate::generate::generate(
        &args.out,
        args.customers,
        args.files,
        args.seed,
        args.force,
    )?;
    out!(
        "generated {} customers, {} orders in {} files in '{}' ({:.2} s, seed {})",
        metadata.customers,
        metadata.rows,
        metadata.files,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        metadata.seed
    );
    Ok(())
}

/// Probes every bucket the job names: listing where inputs are, listing and
/// writing where outputs go. Prints one line per bucket and fails with every
/// problem found.
async fn check_storage(
    job: &JobPlan,
    stores: &crate::storage::Stores,
) -> Result<(), Error> {
    let probe_id = new_run_id();
    let mut problems = Vec::new();
    for bucket in stores.bucket_names() {
        let settings = stores.settings(bucket).cloned().unwrap_or_default();
        let mut prefixes: Vec<(String, bool)> = Vec::new();
        for input in &job.inputs {
            if let crate::storage::Location::S3 { bucket: b, key } = &input.location
                && b == bucket
            {
                let root = crate::storage::key_glob_root(key).to_string();
                prefixes.push((
                    if input.location.is_glob() {
                        root
                    } else {
                        key.clone()
                    },
                    false,
                ));
            }
        }
        for output in &job.outputs {
            if output.location.bucket() == Some(bucket)
                && let Some((crate::storage::Location::S3 { key, .. }, _)) =
                    output.location.parent()
            {
                prefixes.push((key, true));
            }
        }
        prefixes.sort();
        prefixes.dedup();
        let endpoint = settings.endpoint.as_deref().unwrap_or("AWS");
        let mut failed = false;
        for (prefix, write) in &prefixes {
            let result = if *write {
                stores.probe(bucket, prefix, &probe_id).await
            } else {
                stores.probe_list(bucket, prefix).await
            };
            if let Err(error) = result {
                failed = true;
                problems.push(error);
            } else {
                let what = if *write {
                    "listed and written"
                } else {
                    "listed"
                };
                out!(
                    "storage s3://{bucket}/{prefix}: {what} (endpoint {endpoint}, region {})",
                    settings.region
                );
            }
        }
        if failed {
            out!(
                "storage s3://{bucket}: FAILED (endpoint {endpoint}, region {})",
                settings.region
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::many(problems))
    }
}

async fn explain(args: ExplainArgs) -> Result<(), Error> {
    let overrides = parse_overrides(&args.params)?;
    let mut job = job::load(&args.job, &overrides)?;
    args.engine.apply(&mut job)?;
    if !args.analyze {
        // Only --analyze runs stages, so only it may need the spill folder.
        crate::engine::check_spill_dir(&job)?;
        job.engine.spill_dir = None;
    }
    let engine = Engine::new(&job)?;
    engine.prepare(&job).await?;
    // Materialized stages that --analyze computes go to a scratch folder.
    let scratch = std::env::temp_dir().join(format!("cra-explain-{}", new_run_id()));
    let result = engine
        .explain(&job, args.stage.as_deref(), args.analyze, &scratch)
        .await;
    std::fs::remove_dir_all(&scratch).ok();
    for line in result?.lines() {
        out!("{line}");
    }
    Ok(())
}

async fn run(args: RunArgs, progress: Progress) -> Result<(), Error> {
    let run_id = args.run_id.clone().unwrap_or_else(new_run_id);
    let mut summary = RunSummary::new(&run_id, &args.job);
    // The summary must never replace the job, an input or an output. These checks
    // need no loaded job; `run_job` checks the job's paths once it has loaded it,
    // and clears `summary_path` when they clash, so nothing is written there.
    let mut summary_path = args.summary_file.clone();
    if let Some(path) = &summary_path {
        crate::summary::check_path(path)?;
        crate::summary::check_target(path, &args.job, None)?;
    }
    let result = match check_run_id(&run_id) {
        Ok(_) => {
            let job = run_job(&args, &run_id, &mut summary, &mut summary_path, &progress);
            let time_limit = async {
                match args.timeout {
                    Some(seconds) => {
                        tokio::time::sleep(Duration::from_secs(seconds)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(job, time_limit);
            // Set once a signal or the time limit came during the commit, which
            // then runs to its end.
            let mut stop_deferred = false;
            loop {
                let cause = tokio::select! {
                    result = &mut job => break result,
                    signal = interrupted(), if !stop_deferred => {
                        format!("interrupted by {signal}")
                    }
                    _ = &mut time_limit, if !stop_deferred => format!(
                        "timed out after {} s (--timeout)",
                        args.timeout.unwrap_or_default()
                    ),
                };
                // A commit that stopped halfway would leave the destinations
                // for the next run to repair, so it runs to its end first, and
                // a committed run to its end.
                if crate::publish::commit_started() {
                    tracing::warn!(
                        "run {cause} during the commit; finishing the commit first"
                    );
                    stop_deferred = true;
                    continue;
                }
                if let Some(url) = &args.cluster {
                    break stop_cluster_run(url, &cause, job.as_mut()).await;
                }
                break Err(Error::run(format!("run {cause}; nothing was published")));
            }
        }
        Err(error) => Err(error),
    };
    summary.finish(result.as_ref().map(|_| ()));
    if let Some(path) = &summary_path
        && let Err(error) = summary.write(path)
    {
        let message =
            format!("cannot write the summary to '{}': {error}", path.display());
        return Err(match result {
            Ok(()) => Error::run(format!("{message}; the outputs were published")),
            Err(run_error) => run_error.context(message),
        });
    }
    result
}

async fn run_job(
    args: &RunArgs,
    run_id: &str,
    summary: &mut RunSummary,
    summary_path: &mut Option<PathBuf>,
    progress: &Progress,
) -> Result<(), Error> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let overrides = parse_overrides(&args.params)?;
    let mut job = job::load(&args.job, &overrides)?;
    args.engine.apply(&mut job)?;
    if let Some(path) = summary_path.as_deref()
        && let Err(error) = crate::summary::check_target(path, &args.job, Some(&job))
    {
        *summary_path = None;
        return Err(error);
    }
    summary.job = Some(job.name.clone());
    summary.params = params_json(&job);
    let span = tracing::info_span!("job", job = %job.name, run_id = %run_id);
    let _guard = span.enter();
    tracing::info!(file = %job.file, "job started");

    if let Some(url) = &args.cluster {
        crate::cluster::check_cluster_url(url)?;
    }
    let mut engine = Engine::new(&job)?;
    if let Some(url) = &args.cluster {
        engine.connect(url, &job).await?;
        tracing::info!(cluster = %url, "connected to the cluster");
    }
    let inputs = engine.prepare(&job).await?;
    let mut publisher =
        Publisher::prepare(&job, engine.stores(), run_id, args.force).await?;
    let staged = stage_outputs(
        &job, &engine, &inputs, &publisher, run_id, started_at, summary, progress,
    )
    .await;
    let (mut manifests, stages) = match staged {
        Ok(staged) => staged,
        Err(error) => {
            publisher.abort().await;
            return Err(error);
        }
    };
    let finished_at = chrono::Utc::now().to_rfc3339();
    for manifest in &mut manifests {
        manifest.finished_at = finished_at.clone();
    }
    // An interrupted cluster run may finish its last query before the cancel
    // reaches it; it still publishes nothing.
    if crate::cluster::stopping() {
        publisher.abort().await;
        return Err(Error::run("the run was interrupted; nothing was published"));
    }
    if let Err(error) = publisher.commit(&manifests).await {
        publisher.abort().await;
        return Err(error);
    }
    for output in &mut summary.outputs {
        output.published = true;
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "job succeeded"
    );
    print_summary(
        &job,
        run_id,
        &stages,
        &manifests,
        &summary.checks,
        started.elapsed(),
    );
    Ok(())
}

/// Runs the stages, writes every output to staging and runs the checks there;
/// returns the manifests to publish and the stages' reports.
#[allow(clippy::too_many_arguments)]
async fn stage_outputs(
    job: &JobPlan,
    engine: &Engine,
    inputs: &[InputReport],
    publisher: &Publisher,
    run_id: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    summary: &mut RunSummary,
    progress: &Progress,
) -> Result<(Vec<Manifest>, Vec<StageReport>), Error> {
    let stages = engine.run_stages(job, publisher.run_dir(), progress).await;
    let stages = match stages {
        Ok(stages) => stages,
        Err(error) => return Err(name_unreadable_input(engine, job, error).await),
    };
    summary.stages = stages.iter().map(StageSummary::from).collect();

    let mut manifests = Vec::new();
    for (index, output) in job.outputs.iter().enumerate() {
        let output_started = Instant::now();
        let staging = publisher.staging(index);
        engine.take_invalid_counts();
        let task = progress.start(format!("output {}", output.table));
        let written = match engine.write_output(job, output, &staging).await {
            Ok(written) => written,
            Err(error) => return Err(name_unreadable_input(engine, job, error).await),
        };
        let rows = written.rows;
        task.finish(rows);
        let invalid_statistics = engine.take_invalid_counts();
        let files = publisher
            .keep_complete_write(index, rows)
            .await
            .map_err(|error| error.context(&job.file))?;
        let elapsed = output_started.elapsed();
        tracing::info!(
            output = %output.location.display(),
            rows,
            files = files.len(),
            spilled_bytes = written.spilled_bytes,
            spill_files = written.spill_files,
            elapsed_ms = elapsed.as_millis() as u64,
            "output staged"
        );
        summary.outputs.push(OutputSummary {
            table: output.table.clone(),
            path: output.location.display(),
            published: false,
            rows,
            bytes: files.iter().map(|f| f.bytes).sum(),
            files: files.clone(),
            spilled_bytes: written.spilled_bytes,
            elapsed_ms: elapsed.as_millis() as u64,
        });
        let schema = engine.schema(&output.table).await.map_err(|error| {
            Error::run(format!("{}: output '{}': {error}", job.file, output.table))
        })?;
        manifests.push(Manifest {
            cra_version: crate::VERSION.to_string(),
            run_id: run_id.to_string(),
            job: job.name.clone(),
            job_file: job.file.clone(),
            started_at: started_at.to_rfc3339(),
            finished_at: String::new(),
            params: params_json(job),
            inputs: inputs.iter().map(manifest_input).collect(),
            table: output.table.clone(),
            rows,
            partition_by: output.partition_by.clone(),
            schema: schema
                .fields()
                .iter()
                .map(|field| ManifestColumn {
                    name: field.name().clone(),
                    data_type: field.data_type().to_string(),
                    nullable: field.is_nullable(),
                })
                .collect(),
            files,
            invalid_statistics,
            stages: summary.stages.clone(),
            checks: Vec::new(),
        });
    }

    // Checks read the staged files, so they test what publishing would show.
    for (index, output) in job.outputs.iter().enumerate() {
        if output.checks.is_empty() {
            continue;
        }
        let schema = engine.schema(&output.table).await.map_err(|error| {
            Error::run(format!("{}: output '{}': {error}", job.file, output.table))
        })?;
        engine
            .use_staged(output, schema, &publisher.staging(index))
            .await
            .map_err(|error| error.context(&job.file))?;
    }
    for (index, output) in job.outputs.iter().enumerate() {
        let results = engine.run_checks(job, output).await?;
        summary.checks.extend(results.iter().cloned());
        manifests[index].checks = results;
    }
    let failed: Vec<&CheckResult> = summary
        .checks
        .iter()
        .filter(|c| !c.passed && c.severity == crate::job::spec::Severity::Error)
        .collect();
    if !failed.is_empty() {
        let mut problems: Vec<Error> =
            failed.iter().map(|c| Error::check(c.describe())).collect();
        let checks = if problems.len() == 1 {
            "an error check failed".to_string()
        } else {
            format!("{} error checks failed", problems.len())
        };
        // The hint follows the last failure, so it closes the list.
        if let Some(last) = problems.pop() {
            problems.push(last.with_hint(format!(
                "{checks}, so nothing was published; fix the data or the job, or set \
                 'severity: warn' on a check to publish anyway"
            )));
        }
        return Err(Error::many(problems));
    }
    Ok((manifests, stages))
}

/// Adds the input file that cannot be read to a run error that came from
/// decoding input data, whose message names no file.
async fn name_unreadable_input(engine: &Engine, job: &JobPlan, error: Error) -> Error {
    let message = error.message().to_lowercase();
    let decoding = ["parquet", "corrupt", "external error", "arrow error"]
        .iter()
        .any(|word| message.contains(word));
    if error.kind() != crate::error::ExitKind::Run || !decoding {
        return error;
    }
    match crate::engine::inputs::find_unreadable_file(engine.stores(), job).await {
        Some((file, problem)) => {
            error.with_hint(format!("input file '{file}' cannot be read: {problem}"))
        }
        None => error,
    }
}

fn params_json(job: &JobPlan) -> serde_json::Map<String, serde_json::Value> {
    job.params
        .iter()
        .map(|param| {
            let value = if param.from_env {
                serde_json::Value::String(crate::redact::MASK.to_string())
            } else {
                param.value.to_json()
            };
            (param.name.clone(), value)
        })
        .collect()
}

fn manifest_input(report: &InputReport) -> ManifestInput {
    ManifestInput {
        name: report.name.clone(),
        path: report.path.clone(),
        files: report.files,
        bytes: report.bytes,
    }
}

fn print_summary(
    job: &JobPlan,
    run_id: &str,
    stages: &[StageReport],
    manifests: &[Manifest],
    checks: &[CheckResult],
    elapsed: Duration,
) {
    out!(
        "job {} succeeded in {:.2} s (run {run_id})",
        job.name,
        elapsed.as_secs_f64()
    );
    let width = stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for stage in stages {
        let kind = if stage.materialized {
            "materialized"
        } else {
            "view"
        };
        out!(
            "  stage  {:width$}  {:>12} rows  {:>8.2} s  {kind}",
            stage.name,
            stage.rows,
            stage.elapsed.as_secs_f64(),
        );
    }
    for stage in stages {
        print_invalid(&format!("stage {}", stage.name), &stage.invalid_statistics);
    }
    for (manifest, output) in manifests.iter().zip(&job.outputs) {
        out!(
            "  output {}  {} rows  {} files  {}",
            manifest.table,
            manifest.rows,
            manifest.files.len(),
            output.location.display()
        );
        print_invalid(
            &format!("output {}", manifest.table),
            &manifest.invalid_statistics,
        );
    }
    let passed = checks.iter().filter(|c| c.passed).count();
    if !checks.is_empty() {
        out!("  checks {passed} of {} passed", checks.len());
    }
    for check in checks.iter().filter(|c| !c.passed) {
        out!("  warning: {}", crate::redact::text(&check.describe()));
    }
}

/// Prints the score functions that met invalid statistics, which scored NULL.
fn print_invalid(what: &str, counts: &std::collections::BTreeMap<String, u64>) {
    for (function, rows) in counts {
        out!("  {what}: {function} scored NULL for {rows} rows with invalid statistics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_split_on_first_equals() {
        let parsed = parse_overrides(&["q=a=b".to_string()]).unwrap();
        assert_eq!(parsed, vec![("q".to_string(), "a=b".to_string())]);
        assert!(parse_overrides(&["novalue".to_string()]).is_err());
        assert!(parse_overrides(&["=x".to_string()]).is_err());
    }

    #[test]
    fn run_id_is_safe_in_paths() {
        let id = new_run_id();
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{id}"
        );
    }
}
