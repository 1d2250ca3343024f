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

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{
    ExecutorProcessConfig, start_executor_process,
};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
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
fn scheduler_session(config: SessionConfig) -> datafusion::error::Result<SessionState> {
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
}

/// Runs a scheduler until the process is stopped.
pub async fn run_scheduler(settings: SchedulerSettings) -> Result<(), Error> {
    let address = socket_address(&settings.bind_host, settings.bind_port)?;
    let session_builder: ballista_scheduler::SessionBuilder = Arc::new(scheduler_session);
    let config_producer: ConfigProducer = Arc::new(cluster_config);
    let config = SchedulerConfig {
        bind_host: settings.bind_host.clone(),
        bind_port: settings.bind_port,
        external_host: settings
            .external_host
            .clone()
            .unwrap_or_else(|| settings.bind_host.clone()),
        executor_timeout_seconds: settings.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: settings
            .executor_timeout_seconds
            .clamp(1, 15),
        no_executors_grace_period_seconds: settings.executor_timeout_seconds,
        executor_termination_grace_period: 0,
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(session_builder)
    .with_override_config_producer(config_producer);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|error| Error::run(format!("cannot set up the scheduler: {error}")))?;
    tracing::info!(%address, "scheduler listening");
    start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|error| Error::run(format!("scheduler on {address} failed: {error}")))
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
}

/// Runs an executor until the process is stopped.
pub async fn run_executor(settings: ExecutorSettings) -> Result<(), Error> {
    std::fs::create_dir_all(&settings.work_dir).map_err(|error| {
        Error::invalid(format!(
            "cannot use the work folder '{}': {error}",
            settings.work_dir.display()
        ))
    })?;
    let work_dir = std::path::absolute(&settings.work_dir)
        .unwrap_or_else(|_| settings.work_dir.clone());
    let registry = {
        let state = scheduler_session(cluster_config()).map_err(|error| {
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
        // Retries the scheduler for this long, so both may start at once.
        scheduler_connect_timeout_seconds: 30,
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
    start_executor_process(Arc::new(config))
        .await
        .map_err(|error| Error::run(format!("executor failed: {error}")))
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
    reach_scheduler(url).await?;
    let mut state = state;
    let json = serde_json::to_string(&ClusterStorage::from_plan(storage))
        .map_err(|error| Error::run(format!("internal error: {error}")))?;
    let mut options = CraOptions::default();
    options
        .set("storage", &json)
        .map_err(|error| Error::run(format!("internal error: {error}")))?;
    state.config_mut().options_mut().extensions.insert(options);
    SessionContext::remote_with_state(url, state)
        .await
        .map_err(|error| Error::invalid(format!("--cluster {url}: {error}")))
}

/// Opens and closes one connection to the scheduler. Connecting a session sends
/// nothing, so without this a wrong address would only fail the first stage.
async fn reach_scheduler(url: &str) -> Result<(), Error> {
    let parsed = url::Url::parse(url)
        .map_err(|error| Error::invalid(format!("--cluster '{url}': {error}")))?;
    // An IPv6 address is bracketed in the URL but not in a socket address.
    let host = match parsed.host() {
        Some(url::Host::Ipv6(address)) => address.to_string(),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    let port = parsed.port().unwrap_or_default();
    let unreachable = |why: String| {
        Error::run(format!(
            "--cluster {url}: cannot reach the scheduler: {why}"
        ))
        .with_hint("start `cra scheduler` there, or check the host and the port")
    };
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(SCHEDULER_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(unreachable(error.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            SCHEDULER_CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Time the client waits for the scheduler to accept a connection.
const SCHEDULER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that `url` reads `df://host:port`.
pub fn check_cluster_url(url: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Error::invalid(format!("--cluster '{url}': {why}")).with_hint(
            "give the scheduler as df://HOST:PORT, such as df://127.0.0.1:50050",
        )
    };
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
        ] {
            assert!(check_cluster_url(url).is_err(), "{url}");
        }
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
