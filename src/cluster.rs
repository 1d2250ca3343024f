//! Running jobs on an Apache DataFusion Ballista cluster.
//!
//! `cra scheduler` and `cra executor` are Ballista 55 processes whose sessions
//! know every cra SQL function, and `cra run --cluster` connects a job's session
//! to the scheduler. The client plans each query and the cluster runs it. Plans
//! name functions only, so the scheduler, the executors and the client each
//! register the same functions from [`crate::functions::register`].
//!
//! Object stores do not travel with a plan, so the client sends each bucket's
//! settings in the `cra.storage` session option. It sends no credential. For
//! each one it sends the name of the environment variable the job read it from,
//! and the scheduler and every executor read their own copy of that variable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{CancelJobParams, GetJobStatusParams};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::protobuf::LogicalPlanNode;

use ballista_core::error::BallistaError;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{
    ExecutorProcessConfig, start_executor_process,
};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service};
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::PhysicalPlanNode;
use serde::{Deserialize, Serialize};

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::execution::session_state::SessionState;

use crate::error::Error;
use crate::storage::{S3Settings, Secret, StoragePlan, Stores};

/// The cra options that travel with each query to the scheduler and the
/// executors, as the session option `cra.storage`.
#[derive(Debug, Clone, Default)]
pub struct CraOptions {
    /// The job's buckets as JSON: a [`ClusterStorage`], without credentials.
    storage: String,
}

impl ConfigExtension for CraOptions {
    const PREFIX: &'static str = "cra";
}

impl ExtensionOptions for CraOptions {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> datafusion::error::Result<()> {
        match key {
            "storage" => {
                self.storage = value.to_string();
                Ok(())
            }
            _ => datafusion::common::config_err!("unknown cra option '{key}'"),
        }
    }

    /// Returns the options with their prefix: Ballista sends each entry's key
    /// as it is, and the receiver sets it by that key.
    fn entries(&self) -> Vec<ConfigEntry> {
        vec![ConfigEntry {
            key: format!("{}.storage", Self::PREFIX),
            value: Some(self.storage.clone()),
            description: "the job's buckets, without credentials",
        }]
    }
}

/// One bucket's settings as sent to the cluster: everything but the credentials,
/// which are named by their environment variables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ClusterBucket {
    endpoint: Option<String>,
    region: String,
    virtual_hosted_style: bool,
    allow_http: bool,
    skip_signature: bool,
    retries: usize,
    retry_timeout_ms: u64,
    connect_timeout_ms: u64,
    timeout_ms: u64,
    /// Environment variable of each credential, by setting key.
    credential_variables: BTreeMap<String, String>,
}

/// The buckets a job names, by bucket name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct ClusterStorage {
    buckets: BTreeMap<String, ClusterBucket>,
}

impl ClusterStorage {
    fn from_plan(plan: &StoragePlan) -> Self {
        let buckets = plan
            .buckets
            .iter()
            .map(|(name, settings)| {
                let bucket = ClusterBucket {
                    endpoint: settings.endpoint.clone(),
                    region: settings.region.clone(),
                    virtual_hosted_style: settings.virtual_hosted_style,
                    allow_http: settings.allow_http,
                    skip_signature: settings.skip_signature,
                    retries: settings.retries,
                    retry_timeout_ms: settings.retry_timeout.as_millis() as u64,
                    connect_timeout_ms: settings.connect_timeout.as_millis() as u64,
                    timeout_ms: settings.timeout.as_millis() as u64,
                    credential_variables: settings
                        .credential_variables
                        .iter()
                        .map(|(key, variable)| (key.to_string(), variable.clone()))
                        .collect(),
                };
                (name.clone(), bucket)
            })
            .collect();
        Self { buckets }
    }

    /// Returns the storage plan of this process: the same settings, with each
    /// credential read from this process's environment.
    fn to_plan(&self) -> Result<StoragePlan, String> {
        let mut buckets = BTreeMap::new();
        for (name, bucket) in &self.buckets {
            let credential = |key: &str| -> Result<Option<Secret>, String> {
                let Some(variable) = bucket.credential_variables.get(key) else {
                    return Ok(None);
                };
                match std::env::var(variable) {
                    Ok(value) => {
                        crate::redact::register(&value);
                        Ok(Some(Secret(value)))
                    }
                    Err(_) => Err(format!(
                        "bucket '{name}': {key} comes from the environment variable \
                         {variable}, which this process does not have; set it for the \
                         scheduler and every executor"
                    )),
                }
            };
            let settings = S3Settings {
                endpoint: bucket.endpoint.clone(),
                region: bucket.region.clone(),
                access_key_id: credential("access_key_id")?,
                secret_access_key: credential("secret_access_key")?,
                session_token: credential("session_token")?,
                virtual_hosted_style: bucket.virtual_hosted_style,
                allow_http: bucket.allow_http,
                skip_signature: bucket.skip_signature,
                retries: bucket.retries,
                retry_timeout: Duration::from_millis(bucket.retry_timeout_ms),
                connect_timeout: Duration::from_millis(bucket.connect_timeout_ms),
                timeout: Duration::from_millis(bucket.timeout_ms),
                ..S3Settings::default()
            };
            buckets.insert(name.clone(), settings);
        }
        Ok(StoragePlan { buckets })
    }
}

/// Returns a session config for the cluster's processes, which accepts the cra
/// options.
fn cluster_config() -> SessionConfig {
    SessionConfig::new_with_ballista().with_option_extension(CraOptions::default())
}

/// Builds the runtime of one session on the scheduler or an executor: the
/// default runtime with the buckets of the session's job, and `work_dir` for
/// spill files.
fn session_runtime(
    config: &SessionConfig,
    work_dir: Option<&PathBuf>,
) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new();
    if let Some(dir) = work_dir {
        builder = builder.with_temp_file_path(dir);
    }
    let runtime = builder.build()?;
    let storage = config
        .options()
        .extensions
        .get::<CraOptions>()
        .map(|options| options.storage.clone())
        .unwrap_or_default();
    if storage.is_empty() {
        return Ok(Arc::new(runtime));
    }
    let storage: ClusterStorage = serde_json::from_str(&storage).map_err(|error| {
        datafusion::error::DataFusionError::Configuration(format!(
            "the cra.storage option is not valid: {error}"
        ))
    })?;
    let plan = storage
        .to_plan()
        .map_err(datafusion::error::DataFusionError::Configuration)?;
    let stores = Stores::new(&plan).map_err(|error| {
        datafusion::error::DataFusionError::Configuration(error.to_string())
    })?;
    for (url, store) in stores.s3_clients() {
        let url = url::Url::parse(&url).map_err(|error| {
            datafusion::error::DataFusionError::Configuration(format!(
                "'{url}' is not a valid URL: {error}"
            ))
        })?;
        runtime.register_object_store(&url, store);
    }
    Ok(Arc::new(runtime))
}

/// Builds the session of one query on the scheduler: Ballista's defaults, the
/// buckets of the query's job, and the cra functions.
fn cluster_session(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    let runtime = session_runtime(&config, None)?;
    let state = ballista_core::utils::default_session_builder(config)?;
    let mut state = SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(runtime)
        .build();
    crate::functions::register(&mut state)?;
    // Outputs with partition_by call this guard, which `cra functions` does not
    // list.
    use datafusion::execution::FunctionRegistry;
    state.register_udf(Arc::new(datafusion::logical_expr::ScalarUDF::from(
        crate::engine::partition::PartitionValue::new(),
    )))?;
    Ok(state)
}

/// Settings of `cra scheduler`.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Host or address to listen on.
    pub bind_host: String,
    /// Port of the scheduler's gRPC service, which clients and executors call.
    pub bind_port: u16,
    /// Host that executors and clients reach this scheduler at.
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor counts as lost, and
    /// its tasks run again elsewhere.
    pub executor_timeout_seconds: u64,
    /// Seconds after a job ends before its shuffle files are removed; 0 keeps
    /// them.
    pub finished_job_data_clean_up_interval_seconds: u64,
    /// Time a running job may go without a running task before the scheduler
    /// cancels it as stalled; zero never cancels.
    pub stalled_job_timeout: Duration,
}

/// Runs a scheduler until the process is stopped.
pub async fn run_scheduler(settings: SchedulerSettings) -> Result<(), Error> {
    let address = socket_address(&settings.bind_host, settings.bind_port)?;
    check_port_free(address, "--bind-port")?;
    let session_builder: ballista_scheduler::SessionBuilder = Arc::new(cluster_session);
    let config_producer: ConfigProducer = Arc::new(cluster_config);
    let config = SchedulerConfig {
        bind_host: settings.bind_host.clone(),
        bind_port: settings.bind_port,
        external_host: settings
            .external_host
            .clone()
            .unwrap_or_else(|| settings.bind_host.clone()),
        executor_timeout_seconds: settings.executor_timeout_seconds,
        // Ballista warns unless executors are checked more often than they
        // may stay silent.
        expire_dead_executor_interval_seconds: (settings.executor_timeout_seconds / 2)
            .clamp(1, 15),
        no_executors_grace_period_seconds: settings.executor_timeout_seconds,
        executor_termination_grace_period: 0,
        finished_job_data_clean_up_interval_seconds: settings
            .finished_job_data_clean_up_interval_seconds,
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(session_builder)
    .with_override_config_producer(config_producer);
    let set_up_failed = |error: BallistaError| {
        Error::run(format!("cannot set up the scheduler: {error}"))
    };
    config.validate().map_err(set_up_failed)?;
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(set_up_failed)?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(set_up_failed)?;
    if !settings.stalled_job_timeout.is_zero() {
        tokio::spawn(cancel_stalled_jobs(
            scheduler.clone(),
            settings.stalled_job_timeout,
            Duration::from_secs(settings.executor_timeout_seconds),
        ));
    }
    tracing::info!(%address, "scheduler listening");
    // Ballista's scheduler does not handle signals itself.
    tokio::select! {
        served = start_grpc_service(address, scheduler) => served
            .map_err(|error| Error::run(format!("scheduler on {address} failed: {error}"))),
        signal = crate::cli::interrupted() => {
            tracing::info!(signal, "scheduler stopping");
            Ok(())
        }
    }
}

/// Progress of one running job, from its execution graph on the scheduler.
#[derive(Debug, Clone, PartialEq)]
struct JobProgress {
    completed_stages: usize,
    running_stages: Vec<usize>,
    running_tasks: usize,
    available_tasks: usize,
}

impl JobProgress {
    /// Returns whether nothing can move the job on, given whether every
    /// registered executor is alive and whether any task of any job runs.
    /// Without a running task no task status arrives to resolve a stage, and
    /// a task that waits would have taken the free slot of an idle cluster.
    /// A silent executor may yet be declared lost, which resets the job's
    /// stages, so no job counts as stalled until then.
    fn is_stalled(&self, executors_alive: bool, any_task_running: bool) -> bool {
        executors_alive
            && self.running_tasks == 0
            && (self.available_tasks == 0 || !any_task_running)
    }
}

/// Cancels every running job whose progress stays the same and stalled for
/// `timeout`.
///
/// NOTE: Ballista 55's adaptive planner can lose track of a stage or of a task
/// slot when an executor is lost late in a job. It then logs "Can't find
/// active stage to update stage outputs" and the job waits for ever. Its static
/// planner does not hang, but wrote duplicate rows after such a loss in a test
/// by hand, so cra keeps the adaptive planner and cancels the job. The client
/// then fails the run with nothing published.
async fn cancel_stalled_jobs(
    scheduler: SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
    timeout: Duration,
    executor_timeout: Duration,
) {
    // Ballista fails the running jobs itself `executor_timeout` after it lost
    // its last executor, with an error that names the cause, so that failure
    // comes first.
    let empty_cluster_timeout = timeout.max(executor_timeout + Duration::from_secs(10));
    let interval =
        (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    // Each stalled job's progress, and since when it has not changed.
    let mut stalled: HashMap<String, (JobProgress, std::time::Instant)> = HashMap::new();
    let mut known_executors = BTreeSet::new();
    loop {
        tokio::time::sleep(interval).await;
        let jobs = scheduler.state.task_manager.get_running_job_cache();
        let mut progress_by_job = Vec::with_capacity(jobs.len());
        for (job_id, job) in jobs.iter() {
            let graph = job.execution_graph.read().await;
            let mut running_stages = graph.running_stages();
            running_stages.sort_unstable();
            let progress = JobProgress {
                completed_stages: graph.completed_stages(),
                running_stages,
                running_tasks: graph.running_tasks().len(),
                available_tasks: graph.available_tasks(),
            };
            progress_by_job.push((job_id.to_string(), progress));
        }
        let any_task_running = progress_by_job
            .iter()
            .any(|(_, progress)| progress.running_tasks > 0);
        let (executors, executors_alive) = executor_ids(&scheduler).await;
        // Ballista resets the stages of a lost executor, so a stall counts
        // from the last change of executors on.
        if executors != known_executors {
            stalled.clear();
            known_executors = executors;
        }
        stalled.retain(|job_id, _| jobs.contains_key(job_id.as_str()));
        for (job_id, progress) in progress_by_job {
            if !progress.is_stalled(executors_alive, any_task_running) {
                stalled.remove(&job_id);
                continue;
            }
            let since = match stalled.get(&job_id) {
                Some((last, since)) if *last == progress => *since,
                _ => {
                    stalled.insert(job_id, (progress, std::time::Instant::now()));
                    continue;
                }
            };
            let limit = match known_executors.is_empty() {
                true => empty_cluster_timeout,
                false => timeout,
            };
            if since.elapsed() < limit {
                continue;
            }
            tracing::error!(
                job_id = %job_id,
                stalled_seconds = since.elapsed().as_secs(),
                completed_stages = progress.completed_stages,
                running_stages = ?progress.running_stages,
                available_tasks = progress.available_tasks,
                "cancelling a job that has had no task running for \
                 --stalled-job-timeout-seconds"
            );
            if let Err(error) = scheduler.cancel_job(job_id.clone().into()).await {
                tracing::error!(job_id = %job_id, %error, "cannot cancel the stalled job");
            }
            stalled.remove(&job_id);
        }
    }
}

/// Age of an executor's last heartbeat after which it may be dead. cra
/// executors send one a second.
const HEARTBEAT_LATE: Duration = Duration::from_secs(5);

/// Returns the ids of the registered executors, and whether each sent a
/// heartbeat within [`HEARTBEAT_LATE`]. With no executor at all, no job can run,
/// so that counts as alive too: the stall check then ends a run that would
/// wait for executors for ever.
async fn executor_ids(
    scheduler: &SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
) -> (BTreeSet<String>, bool) {
    let Ok(executors) = scheduler.state.executor_manager.get_executors_state().await
    else {
        return (BTreeSet::new(), false);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let alive = executors.iter().all(|(_, heartbeat, _)| {
        heartbeat.is_some_and(|at| now.saturating_sub(at) < HEARTBEAT_LATE)
    });
    let ids = executors
        .into_iter()
        .map(|(metadata, _, _)| metadata.id)
        .collect();
    (ids, alive)
}

/// Settings of `cra executor`.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Host or address to listen on.
    pub bind_host: String,
    /// Port of the Arrow Flight service that serves shuffle data and results.
    pub bind_port: u16,
    /// Port of the executor's gRPC service, which the scheduler calls.
    pub bind_grpc_port: u16,
    /// Host that the scheduler and other executors reach this executor at.
    pub external_host: Option<String>,
    /// Host of the scheduler.
    pub scheduler_host: String,
    /// Port of the scheduler.
    pub scheduler_port: u16,
    /// Folder for shuffle files and spills.
    pub work_dir: PathBuf,
    /// Tasks run at once; the number of cores when 0.
    pub concurrent_tasks: usize,
    /// Time to wait for the scheduler to answer at start.
    pub scheduler_connect_timeout: Duration,
    /// Age after which the executor removes a job's shuffle files itself.
    pub job_data_ttl_seconds: u64,
}

/// Runs an executor until the process is stopped.
pub async fn run_executor(settings: ExecutorSettings) -> Result<(), Error> {
    std::fs::create_dir_all(&settings.work_dir).map_err(|error| {
        Error::invalid(format!(
            "--work-dir '{}': cannot create the folder: {error}",
            settings.work_dir.display()
        ))
    })?;
    let work_dir = std::path::absolute(&settings.work_dir)
        .unwrap_or_else(|_| settings.work_dir.clone());
    // Ballista's executor registers before it listens, and stops without an
    // error when a port is taken, so the ports are tried first.
    for (port, flag) in [
        (settings.bind_port, "--bind-port"),
        (settings.bind_grpc_port, "--bind-grpc-port"),
    ] {
        check_port_free(socket_address(&settings.bind_host, port)?, flag)?;
    }
    if settings.bind_port == settings.bind_grpc_port {
        return Err(Error::invalid(format!(
            "--bind-port and --bind-grpc-port are both {}; the executor needs two ports",
            settings.bind_port
        )));
    }
    let scheduler = match settings.scheduler_host.contains(':') {
        true => format!(
            "df://[{}]:{}",
            settings.scheduler_host, settings.scheduler_port
        ),
        false => format!(
            "df://{}:{}",
            settings.scheduler_host, settings.scheduler_port
        ),
    };
    wait_for_scheduler(&scheduler, settings.scheduler_connect_timeout).await?;
    let registry = {
        let state = cluster_session(cluster_config()).map_err(|error| {
            Error::run(format!(
                "cannot build the executor's function list: {error}"
            ))
        })?;
        BallistaFunctionRegistry::from(&state)
    };
    let runtime_dir = work_dir.clone();
    let runtime_producer: RuntimeProducer = Arc::new(move |config: &SessionConfig| {
        session_runtime(config, Some(&runtime_dir))
    });
    let config_producer: ConfigProducer = Arc::new(cluster_config);
    let config = ExecutorProcessConfig {
        bind_host: settings.bind_host.clone(),
        external_host: Some(
            settings
                .external_host
                .clone()
                .unwrap_or_else(|| settings.bind_host.clone()),
        ),
        port: settings.bind_port,
        grpc_port: settings.bind_grpc_port,
        scheduler_host: settings.scheduler_host.clone(),
        scheduler_port: settings.scheduler_port,
        // `wait_for_scheduler` has waited; Ballista's own wait never ends.
        scheduler_connect_timeout_seconds: 0,
        job_data_ttl_seconds: settings.job_data_ttl_seconds,
        job_data_clean_up_interval_seconds: JOB_DATA_CLEAN_UP_INTERVAL_SECONDS,
        vcores: settings.concurrent_tasks,
        work_dir: Some(work_dir.display().to_string()),
        executor_heartbeat_interval_seconds: 1,
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(runtime_producer),
        override_config_producer: Some(config_producer),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(
        flight_port = settings.bind_port,
        grpc_port = settings.bind_grpc_port,
        scheduler = %format!("{}:{}", settings.scheduler_host, settings.scheduler_port),
        work_dir = %work_dir.display(),
        "executor starting"
    );
    // Ballista's executor stops itself without an error when it loses the
    // scheduler. Only a signal is a reason to exit 0, so that a supervisor
    // restarts an executor that lost its scheduler.
    let signalled = Arc::new(AtomicBool::new(false));
    let watch = {
        let signalled = Arc::clone(&signalled);
        tokio::spawn(async move {
            crate::cli::interrupted().await;
            signalled.store(true, Ordering::SeqCst);
        })
    };
    let result = start_executor_process(Arc::new(config))
        .await
        .map_err(|error| Error::run(format!("executor failed: {error}")));
    watch.abort();
    if result.is_ok() && !signalled.load(Ordering::SeqCst) {
        return Err(Error::run(format!(
            "the executor stopped because it lost the scheduler at {scheduler}"
        ))
        .with_hint("restart the executor once `cra scheduler` runs again"));
    }
    result
}

/// Seconds between an executor's own sweeps of its old shuffle files.
const JOB_DATA_CLEAN_UP_INTERVAL_SECONDS: u64 = 600;

/// Fails when `address` is taken, naming the flag that chose it.
fn check_port_free(address: SocketAddr, flag: &str) -> Result<(), Error> {
    std::net::TcpListener::bind(address)
        .map(drop)
        .map_err(|error| {
            Error::run(format!(
                "{flag} {}: cannot listen on {address}: {error}",
                address.port()
            ))
            .with_hint("stop the process that listens there, or choose another port")
        })
}

/// Asks the scheduler at `url` until it answers, for up to `timeout`, so that
/// an executor may start before its scheduler.
async fn wait_for_scheduler(url: &str, timeout: Duration) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let what = "--scheduler-host and --scheduler-port";
    let mut logged = false;
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        let limit = left.clamp(Duration::from_millis(500), SCHEDULER_CONNECT_TIMEOUT);
        match ask_scheduler(url, limit).await {
            Ok(()) => return Ok(()),
            Err(Unanswered::NotScheduler) => {
                return Err(Unanswered::NotScheduler.error(&format!("{what} ({url})")));
            }
            Err(Unanswered::Unreachable(why)) if started.elapsed() >= timeout => {
                return Err(Error::run(format!(
                    "{what} ({url}): no scheduler answered within {} s: {why}",
                    timeout.as_secs()
                ))
                .with_hint(
                    "start `cra scheduler` first, check --scheduler-host and \
                     --scheduler-port, or raise --scheduler-connect-timeout-seconds",
                ));
            }
            Err(Unanswered::Unreachable(why)) => {
                if !logged {
                    tracing::warn!(scheduler = %url, error = %why, "waiting for the scheduler");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Connects a job's session to the scheduler at `url` (`df://host:port`).
///
/// The session keeps its settings and object stores. Connecting replaces its
/// function lists with Ballista's, so the caller registers the cra functions on
/// the returned context again.
pub async fn connect(
    url: &str,
    state: SessionState,
    storage: &StoragePlan,
) -> Result<SessionContext, Error> {
    check_cluster_url(url)?;
    ask_scheduler(url, SCHEDULER_CONNECT_TIMEOUT)
        .await
        .map_err(|unanswered| unanswered.error(&format!("--cluster {url}")))?;
    let _ = SCHEDULER.set(url.to_string());
    let mut state = state;
    let json = serde_json::to_string(&ClusterStorage::from_plan(storage))
        .map_err(|error| Error::run(format!("internal error: {error}")))?;
    let mut options = CraOptions::default();
    options
        .set("storage", &json)
        .map_err(|error| Error::run(format!("internal error: {error}")))?;
    state.config_mut().options_mut().extensions.insert(options);
    let ctx = SessionContext::remote_with_state(url, state)
        .await
        .map_err(|error| Error::invalid(format!("--cluster {url}: {error}")))?;
    // In pull mode the scheduler answers each query with its job id at once, so
    // an interrupted run can cancel the job; in push mode the id comes with the
    // first status, which may only be the job's end.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .set("ballista.client.pull", "true")
        .map_err(|error| Error::run(format!("internal error: {error}")))?;
    Ok(ctx)
}

/// The queries of this process that run on the cluster, by watch number.
static RUNNING: Mutex<Vec<(u64, Arc<dyn ExecutionPlan>)>> = Mutex::new(Vec::new());

/// Numbers the entries of [`RUNNING`].
static NEXT_WATCH: AtomicU64 = AtomicU64::new(0);

/// Set when the run stops: from then on no query starts on the cluster.
static STOPPING: AtomicBool = AtomicBool::new(false);

fn running() -> MutexGuard<'static, Vec<(u64, Arc<dyn ExecutionPlan>)>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a query off [`RUNNING`] when it ends or is dropped.
struct Watch(u64);

impl Drop for Watch {
    fn drop(&mut self) {
        running().retain(|(number, _)| *number != self.0);
    }
}

/// Returns the Ballista job id of a query on the cluster, once the scheduler
/// has accepted it.
fn job_id(plan: &dyn ExecutionPlan) -> Option<String> {
    let query = plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()?;
    query.job_id().map(String::from)
}

/// Runs `plan` and returns its batches. A plan that runs on the cluster is
/// watched until it ends, so that [`stop_jobs`] can cancel its job.
pub(crate) async fn collect(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
) -> datafusion::error::Result<Vec<RecordBatch>> {
    let remote = plan.is::<DistributedQueryExec<LogicalPlanNode>>();
    let _watch = if remote {
        if STOPPING.load(Ordering::SeqCst) {
            return Err(datafusion::error::DataFusionError::Execution(
                "the run is stopping, so it starts no more cluster jobs".to_string(),
            ));
        }
        let number = NEXT_WATCH.fetch_add(1, Ordering::SeqCst);
        running().push((number, Arc::clone(&plan)));
        Some(Watch(number))
    } else {
        None
    };
    let result = datafusion::physical_plan::collect(plan, task).await;
    if remote {
        result.map_err(ClusterFailure::wrap)
    } else {
        result
    }
}

/// The scheduler this process connected to, for messages.
static SCHEDULER: OnceLock<String> = OnceLock::new();

/// A query that failed on the cluster, in the words of a user: the job's own
/// error when the job failed, or what happened to the connection when the
/// scheduler could not be asked.
#[derive(Debug)]
pub struct ClusterFailure {
    /// One line about what failed.
    pub message: String,
    /// A likely fix.
    pub hint: Option<String>,
    /// True when the cluster failed rather than the query, so the SQL text is
    /// not to blame.
    pub outside_sql: bool,
}

impl std::fmt::Display for ClusterFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClusterFailure {}

impl ClusterFailure {
    /// Rewrites the error of a query that ran on the cluster. Ballista reports
    /// both a failed job and a failed call as text: `Job ID failed: REASON`, or
    /// the debug form of a gRPC status or transport error.
    fn wrap(
        error: datafusion::error::DataFusionError,
    ) -> datafusion::error::DataFusionError {
        let text = match error.find_root() {
            datafusion::error::DataFusionError::Execution(text) => text.clone(),
            _ => return error,
        };
        let at = SCHEDULER
            .get()
            .map(|url| format!(" at {url}"))
            .unwrap_or_default();
        let failure = if let Some((job, reason)) = text
            .strip_prefix("Job ")
            .and_then(|rest| rest.split_once(" failed: "))
        {
            let reason = job_failure_reason(reason);
            // Ballista fails a job whose executors are all gone.
            let executors_lost = reason.contains("executors were lost")
                || reason.contains("no executors remain");
            // This run cancels its jobs only while it stops, so another
            // cancel came from the scheduler's stalled-job check or another
            // client.
            let cancelled_elsewhere = reason == "Cancelled" && !stopping();
            if cancelled_elsewhere {
                ClusterFailure {
                    message: format!(
                        "cluster job {job} was cancelled on the scheduler{at}, not by \
                         this run"
                    ),
                    hint: Some(
                        "`cra scheduler` cancels a job that has had no task running for \
                         --stalled-job-timeout-seconds, as when no executor is \
                         registered or Ballista 55 lost track of the job after losing \
                         an executor; its log names the job. Check that executors run, \
                         restart them if the next run stalls too, and run the job again"
                            .to_string(),
                    ),
                    outside_sql: true,
                }
            } else {
                ClusterFailure {
                    message: format!("cluster job {job} failed: {reason}"),
                    hint: executors_lost.then(|| {
                        "start executors for the scheduler; it fails running jobs once \
                         it has had none for --executor-timeout-seconds"
                            .to_string()
                    }),
                    outside_sql: executors_lost,
                }
            }
        } else if let Some(address) = unreachable_executor(&text) {
            ClusterFailure {
                message: format!(
                    "cannot fetch results from the executor at {address}: {}",
                    connection_cause(&text)
                ),
                hint: Some(
                    "the executor may have stopped after its job ended; run the job \
                     again once every executor runs"
                        .to_string(),
                ),
                outside_sql: true,
            }
        } else if grpc_code(&text).as_deref() == Some("Unavailable") {
            let cause = grpc_message(&text).unwrap_or_else(|| connection_cause(&text));
            ClusterFailure {
                message: format!("lost the connection to the scheduler{at}: {cause}"),
                hint: Some(LOST_SCHEDULER_HINT.to_string()),
                outside_sql: true,
            }
        } else if let Some(code) = grpc_code(&text) {
            let message = match code.as_str() {
                "Unimplemented" => format!(
                    "the service{at} is not a Ballista scheduler: it does not know \
                     the scheduler's calls"
                ),
                _ => match grpc_message(&text) {
                    Some(detail) => {
                        format!("the scheduler{at} failed the call ({code}: {detail})")
                    }
                    None => format!("the scheduler{at} failed the call ({code})"),
                },
            };
            let hint = if code == "Unimplemented" {
                "give --cluster the --bind-port of `cra scheduler`; an executor's ports \
                 take no jobs"
            } else {
                "check that `cra scheduler` runs there and that its log shows no error"
            };
            ClusterFailure {
                message,
                hint: Some(hint.to_string()),
                outside_sql: true,
            }
        } else if is_connection_failure(&text) {
            ClusterFailure {
                message: format!(
                    "lost the connection to the scheduler{at}: {}",
                    connection_cause(&text)
                ),
                hint: Some(LOST_SCHEDULER_HINT.to_string()),
                outside_sql: true,
            }
        } else {
            return error;
        };
        datafusion::error::DataFusionError::External(Box::new(failure))
    }
}

const LOST_SCHEDULER_HINT: &str = "check that `cra scheduler` still runs there; a \
     stopped scheduler takes its executors down within seconds, so restart them too";

/// Returns the failure reason of a Ballista job without Ballista's framing and
/// without the debug form of the error inside it: the reason of
/// `Job failed due to stage 1 failed: Task failed due to runtime execution
/// error: DataFusionError(ArrowError(CastError("Cannot cast ...")))` is
/// `cast error: Cannot cast ...`.
fn job_failure_reason(reason: &str) -> String {
    let mut reason = reason.trim();
    for framing in [
        "Job failed due to stage ",
        "Task failed due to runtime execution error: ",
    ] {
        if let Some(rest) = reason.strip_prefix(framing) {
            reason = rest
                .split_once(" failed: ")
                .filter(|_| framing.ends_with("stage "))
                .map_or(rest, |(_, after)| after);
        }
    }
    if !reason.starts_with("DataFusionError(") {
        return reason.to_string();
    }
    // The innermost `Name("text")` of the debug form contains the message.
    let Some(open) = reason.rfind("(\"") else {
        return reason.to_string();
    };
    let name_start = reason[..open]
        .rfind(|c: char| !c.is_ascii_alphanumeric())
        .map_or(0, |at| at + 1);
    let name = &reason[name_start..open];
    let Some(close) = reason[open + 2..].find("\")") else {
        return reason.to_string();
    };
    let message = reason[open + 2..open + 2 + close].replace("\\\"", "\"");
    match words_of(name) {
        Some(kind) => format!("{kind}: {message}"),
        None => message,
    }
}

/// Returns `CastError` as `cast error`; the generic names as nothing.
fn words_of(name: &str) -> Option<String> {
    if matches!(
        name,
        "Execution" | "External" | "Internal" | "Plan" | "Shared"
    ) {
        return None;
    }
    let mut words = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    Some(words)
}

/// Returns the code of a gRPC status in its debug form, such as `Unavailable`.
/// The numeric `code: 111` of an operating system error is no gRPC code.
fn grpc_code(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("code: ")?;
    let code: String = rest
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    code.starts_with(|c: char| c.is_ascii_alphabetic())
        .then_some(code)
}

/// Returns the address in Ballista's "Error connecting to Ballista scheduler
/// or executor at ADDRESS" when it is not the scheduler's, so the client could
/// not connect to an executor's Flight port.
fn unreachable_executor(text: &str) -> Option<String> {
    let (_, rest) =
        text.split_once("Error connecting to Ballista scheduler or executor at ")?;
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))
        .unwrap_or(rest);
    // The address ends at the colon before the error's debug form.
    let address = rest.split_once(": ").map_or(rest, |(address, _)| address);
    let address = address.to_string();
    let scheduler = SCHEDULER
        .get()
        .map(|url| url.trim_start_matches("df://").trim_end_matches('/'));
    (scheduler != Some(address.as_str())).then_some(address)
}

/// Returns the message of a gRPC status in its debug form.
fn grpc_message(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("message: \"")?;
    let (message, _) = rest.split_once('"')?;
    (!message.is_empty()).then(|| message.to_string())
}

fn is_connection_failure(text: &str) -> bool {
    [
        "transport error",
        "Stream closed",
        "broken pipe",
        "connection reset",
        "Connection refused",
        "tcp connect error",
        "h2 protocol error",
    ]
    .iter()
    .any(|needle| text.to_lowercase().contains(&needle.to_lowercase()))
}

/// Returns the lowest cause a transport error's text names.
fn connection_cause(text: &str) -> String {
    for (needle, cause) in [
        ("broken pipe", "broken pipe"),
        ("connection reset", "connection reset"),
        ("connection refused", "connection refused"),
        ("stream closed", "the scheduler closed the job's stream"),
    ] {
        if text.to_lowercase().contains(needle) {
            return cause.to_string();
        }
    }
    "transport error".to_string()
}

/// Returns whether [`stop_jobs`] has been called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Returns the ids of the cluster jobs this process still waits for.
pub fn running_jobs() -> Vec<String> {
    running()
        .iter()
        .filter_map(|(_, plan)| job_id(plan.as_ref()))
        .collect()
}

/// The cluster jobs that [`stop_jobs`] has asked the scheduler to cancel.
static CANCELLED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Returns the cluster jobs that [`stop_jobs`] has asked the scheduler to
/// cancel.
pub fn cancelled_jobs() -> Vec<String> {
    CANCELLED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Stops this process's work on the scheduler at `url`: no new job starts, and
/// each running job is cancelled as soon as the scheduler has given it an id.
/// Returns once no job runs any more. The queries that wait for the jobs must
/// be polled meanwhile, as they see the jobs end.
pub async fn stop_jobs(url: &str) {
    STOPPING.store(true, Ordering::SeqCst);
    let endpoint = grpc_endpoint(url);
    let mut client = None;
    loop {
        if running().is_empty() {
            return;
        }
        let cancelled = cancelled_jobs();
        let pending: Vec<String> = running_jobs()
            .into_iter()
            .filter(|id| !cancelled.contains(id))
            .collect();
        for id in pending {
            if client.is_none() {
                client = SchedulerGrpcClient::connect(endpoint.clone()).await.ok();
            }
            let Some(scheduler) = client.as_mut() else {
                break;
            };
            let request = CancelJobParams { job_id: id.clone() };
            match scheduler.cancel_job(request).await {
                Ok(_) => tracing::info!(job_id = %id, "cancelled the cluster job"),
                Err(error) => tracing::warn!(
                    job_id = %id,
                    error = %error.message(),
                    "cannot cancel the cluster job"
                ),
            }
            CANCELLED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns the gRPC address of the scheduler at `url` (`df://host:port`).
fn grpc_endpoint(url: &str) -> String {
    match url.split_once("://") {
        Some((_, address)) => format!("http://{}", address.trim_end_matches('/')),
        None => format!("http://{url}"),
    }
}

/// Reason that no scheduler responded.
enum Unanswered {
    /// Nothing answered, for this reason.
    Unreachable(String),
    /// A gRPC service answered that is not a Ballista scheduler.
    NotScheduler,
}

impl Unanswered {
    /// Returns the error of `what` (such as `--cluster df://host:port`).
    fn error(self, what: &str) -> Error {
        match self {
            Unanswered::Unreachable(why) => {
                Error::run(format!("{what}: cannot reach the scheduler: {why}"))
                    .with_hint("start `cra scheduler` there, or check the host and the port")
            }
            Unanswered::NotScheduler => Error::run(format!(
                "{what}: the service there is not a Ballista scheduler: it does not \
                 know the scheduler's calls"
            ))
            .with_hint(
                "give the --bind-port of `cra scheduler`; an executor's ports take no jobs",
            ),
        }
    }
}

/// Asks the scheduler at `url` for a job that does not exist, to learn that a
/// scheduler answers there: connecting a session sends nothing, so a wrong
/// address would only fail the first stage.
async fn ask_scheduler(url: &str, limit: Duration) -> Result<(), Unanswered> {
    let parsed = url::Url::parse(url)
        .map_err(|error| Unanswered::Unreachable(error.to_string()))?;
    // An IPv6 address is bracketed in the URL but not in a socket address.
    let host = match parsed.host() {
        Some(url::Host::Ipv6(address)) => address.to_string(),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    let port = parsed.port().unwrap_or_default();
    let silent = || {
        Unanswered::Unreachable(format!("no answer within {:.1} s", limit.as_secs_f64()))
    };
    // A plain connection first: its error names the cause, where gRPC's error
    // reads only "transport error".
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(limit, connect).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(Unanswered::Unreachable(error.to_string())),
        Err(_) => return Err(silent()),
    }
    let ask = async {
        let mut client = SchedulerGrpcClient::connect(grpc_endpoint(url))
            .await
            .map_err(|error| Unanswered::Unreachable(error.to_string()))?;
        let request = GetJobStatusParams {
            job_id: "cra-connection-check".to_string(),
        };
        match client.get_job_status(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                Err(Unanswered::NotScheduler)
            }
            Err(status) => Err(Unanswered::Unreachable(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    };
    match tokio::time::timeout(limit, ask).await {
        Ok(answer) => answer,
        Err(_) => Err(silent()),
    }
}

/// Time the client waits for the scheduler to answer when it connects.
const SCHEDULER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that `url` reads `df://host:port`.
pub fn check_cluster_url(url: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Error::invalid(format!("--cluster '{url}': {why}")).with_hint(
            "give the scheduler as df://HOST:PORT, such as df://127.0.0.1:50050",
        )
    };
    // The URL parser drops spaces at either end, which would hide a quoting
    // mistake in the orchestrator's command line.
    if url.contains(char::is_whitespace) {
        return Err(invalid("it contains a space"));
    }
    let parsed = url::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
    if parsed.scheme() != "df" {
        return Err(invalid("the scheme must be df"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    match parsed.port() {
        None => return Err(invalid("no port")),
        Some(0) => return Err(invalid("port 0 names no scheduler")),
        Some(_) => {}
    }
    if !(parsed.path().is_empty() || parsed.path() == "/")
        || parsed.query().is_some()
        || !parsed.username().is_empty()
    {
        return Err(invalid("only a host and a port may follow df://"));
    }
    Ok(())
}

fn socket_address(host: &str, port: u16) -> Result<SocketAddr, Error> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| {
            Error::invalid(format!(
                "--bind-host '{host}' is not a host this machine has"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_url_needs_df_host_and_port() {
        assert!(check_cluster_url("df://127.0.0.1:50050").is_ok());
        assert!(check_cluster_url("df://localhost:50050/").is_ok());
        assert!(check_cluster_url("df://[::1]:50050").is_ok());
        for url in [
            "127.0.0.1:50050",
            "http://127.0.0.1:50050",
            "df://127.0.0.1",
            "df://:50050",
            "df://127.0.0.1:50050/path",
            "df://user@127.0.0.1:50050",
            "df://127.0.0.1:0",
            "df://127.0.0.1:50050 ",
            " df://127.0.0.1:50050",
        ] {
            assert!(check_cluster_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn job_failure_reason_drops_ballista_framing() {
        let reason = "Job failed due to stage 0 failed: Task failed due to runtime \
            execution error: DataFusionError(Shared(External(ArrowError(CastError(\
            \"Cannot cast string '1x' to value of Int32 type\")))))";
        assert_eq!(
            job_failure_reason(reason),
            "cast error: Cannot cast string '1x' to value of Int32 type"
        );
        let reason = "Task failed due to runtime execution error: \
            DataFusionError(Execution(\"model struct lacks field 'r'\"))";
        assert_eq!(job_failure_reason(reason), "model struct lacks field 'r'");
        assert_eq!(job_failure_reason("Cancelled"), "Cancelled");
    }

    #[test]
    fn cluster_failures_say_what_failed() {
        let wrap = |text: &str| {
            let error = ClusterFailure::wrap(
                datafusion::error::DataFusionError::Execution(text.to_string()),
            );
            match error {
                datafusion::error::DataFusionError::External(external) => {
                    let failure = external.downcast_ref::<ClusterFailure>().unwrap();
                    (failure.message.clone(), failure.outside_sql)
                }
                other => panic!("not rewritten: {other}"),
            }
        };
        let (message, outside_sql) = wrap("Job 038J failed: Cancelled");
        assert_eq!(
            message,
            "cluster job 038J was cancelled on the scheduler, not by this run"
        );
        assert!(outside_sql);
        let (message, outside_sql) =
            wrap("Job 038K failed: Job failed due to stage 2 failed: out of memory");
        assert_eq!(message, "cluster job 038K failed: out of memory");
        assert!(!outside_sql);
        let (message, outside_sql) = wrap(
            "Status { code: Unavailable, message: \"error trying to connect\", \
             metadata: MetadataMap { headers: {} }, source: None }",
        );
        assert_eq!(
            message,
            "lost the connection to the scheduler: error trying to connect"
        );
        assert!(outside_sql);
        let (message, _) =
            wrap("status { code: Unimplemented, metadata: MetadataMap { headers: {} } }");
        assert!(message.contains("not a Ballista scheduler"), "{message}");
        let (message, outside_sql) = wrap("Stream closed without job completing");
        assert!(
            message.starts_with("lost the connection to the scheduler"),
            "{message}"
        );
        assert!(outside_sql);
        let (message, outside_sql) = wrap(
            "Error connecting to Ballista scheduler or executor at \
             http://127.0.0.1:47351: tonic::transport::Error(Transport, \
             ConnectError(Os { code: 111, kind: ConnectionRefused, \
             message: \"Connection refused\" }))",
        );
        assert_eq!(
            message,
            "cannot fetch results from the executor at 127.0.0.1:47351: \
             connection refused"
        );
        assert!(outside_sql);
        // A job that failed on such a fetch keeps its id.
        let (message, _) = wrap(
            "Job 038L failed: Job failed due to stage 3 failed: Error connecting \
             to Ballista scheduler or executor at http://127.0.0.1:47351: \
             ConnectError",
        );
        assert!(
            message.starts_with("cluster job 038L failed: "),
            "{message}"
        );
        // An error of the query itself keeps its own words.
        let error = ClusterFailure::wrap(datafusion::error::DataFusionError::Execution(
            "model struct lacks field 'r'".to_string(),
        ));
        assert!(matches!(
            error,
            datafusion::error::DataFusionError::Execution(_)
        ));
    }

    #[test]
    fn stall_needs_live_executors_and_no_task() {
        let progress = |running_tasks, available_tasks| JobProgress {
            completed_stages: 1,
            running_stages: vec![2],
            running_tasks,
            available_tasks,
        };
        // Nothing runs and nothing waits: no task status can move the job.
        assert!(progress(0, 0).is_stalled(true, true));
        // Tasks wait while another job's tasks hold the slots.
        assert!(!progress(0, 3).is_stalled(true, true));
        // Tasks wait although no task of any job runs.
        assert!(progress(0, 3).is_stalled(true, false));
        // The job's own task runs.
        assert!(!progress(1, 0).is_stalled(true, true));
        // A silent executor may yet be declared lost and its stages reset.
        assert!(!progress(0, 0).is_stalled(false, false));
    }

    /// The option survives the way Ballista sends settings: each entry of the
    /// client's config set by its key on the receiver's config.
    #[test]
    fn storage_option_travels_as_settings() {
        let mut sent = cluster_config();
        sent.options_mut()
            .set("cra.storage", r#"{"buckets":{}}"#)
            .unwrap();
        let mut received = cluster_config();
        for entry in sent.options().entries() {
            if let Some(value) = entry.value {
                let _ = received.options_mut().set(&entry.key, &value);
            }
        }
        let options = received.options().extensions.get::<CraOptions>().unwrap();
        assert_eq!(options.storage, r#"{"buckets":{}}"#);
    }

    /// Credentials leave the client as variable names only, and a process reads
    /// their values from its own environment.
    #[test]
    fn storage_sends_variable_names_not_secrets() {
        let mut settings = S3Settings {
            endpoint: Some("http://127.0.0.1:3900".to_string()),
            access_key_id: Some(Secret("GKEXAMPLEKEY".to_string())),
            secret_access_key: Some(Secret("very-secret-value".to_string())),
            ..S3Settings::default()
        };
        settings
            .credential_variables
            .insert("access_key_id", "CRA_TEST_CLUSTER_KEY".to_string());
        settings
            .credential_variables
            .insert("secret_access_key", "CRA_TEST_CLUSTER_SECRET".to_string());
        let plan = StoragePlan {
            buckets: BTreeMap::from([("lake".to_string(), settings)]),
        };
        let json = serde_json::to_string(&ClusterStorage::from_plan(&plan)).unwrap();
        assert!(!json.contains("GKEXAMPLEKEY"), "{json}");
        assert!(!json.contains("very-secret-value"), "{json}");
        assert!(json.contains("CRA_TEST_CLUSTER_SECRET"), "{json}");

        let received: ClusterStorage = serde_json::from_str(&json).unwrap();
        let missing = received.to_plan().unwrap_err();
        assert!(missing.contains("CRA_TEST_CLUSTER_KEY"), "{missing}");
        // SAFETY: no other test reads or writes these variables.
        unsafe {
            std::env::set_var("CRA_TEST_CLUSTER_KEY", "GKEXAMPLEKEY");
            std::env::set_var("CRA_TEST_CLUSTER_SECRET", "very-secret-value");
        }
        let rebuilt = received.to_plan().unwrap();
        let bucket = &rebuilt.buckets["lake"];
        assert_eq!(bucket.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(
            bucket.secret_access_key,
            Some(Secret("very-secret-value".to_string()))
        );
    }
}
