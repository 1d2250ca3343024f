//! The Garage S3 server that `scripts/test` starts on 127.0.0.1: its settings
//! from the environment, a client for the tests' own uploads and listings, and
//! stopping and restarting it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

/// Settings of the running test server.
pub struct Garage {
    /// Endpoint URL, on 127.0.0.1.
    pub endpoint: String,
    /// Region the server expects.
    pub region: String,
    /// Bucket the main key may read and write.
    pub bucket: String,
    /// Bucket only the second key may use.
    pub second_bucket: String,
    runtime: tokio::runtime::Runtime,
}

/// Returns the value of a variable that `scripts/test` sets.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the storage and cluster tests need the Garage \
             server and the cluster that scripts/test starts; run them with \
             scripts/test"
        )
    })
}

impl Garage {
    /// Reads the server's settings; panics with the command to use when the
    /// tests run without the server.
    pub fn from_env() -> Self {
        let endpoint = var("CRA_TEST_S3_ENDPOINT");
        assert!(
            endpoint.starts_with("http://127.0.0.1:"),
            "the test server must be on 127.0.0.1, not {endpoint}"
        );
        Self {
            endpoint,
            region: var("CRA_TEST_S3_REGION"),
            bucket: var("CRA_TEST_S3_BUCKET"),
            second_bucket: var("CRA_TEST_S3_SECOND_BUCKET"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Returns the `storage:` section of a job that reaches the server with the
    /// main key, through `${env:...}` references.
    pub fn storage_yaml(&self) -> String {
        "storage:\n  s3:\n    endpoint: ${env:CRA_TEST_S3_ENDPOINT}\n    region: \
         ${env:CRA_TEST_S3_REGION}\n    allow_http: true\n    access_key_id: \
         ${env:CRA_TEST_S3_ACCESS_KEY_ID}\n    secret_access_key: \
         ${env:CRA_TEST_S3_SECRET_ACCESS_KEY}\n"
            .to_string()
    }

    /// Rewrites the main job so its input and both outputs are below `prefix` in
    /// the test bucket, with the storage section of the test server.
    pub fn main_job(&self, workspace: &super::Workspace, prefix: &str) -> String {
        let bucket = &self.bucket;
        self.upload(
            &workspace.path("data/cdnow/transactions.parquet"),
            &format!("{prefix}/input/transactions.parquet"),
        );
        let job =
            std::fs::read_to_string(workspace.path("jobs/customer_value.yaml")).unwrap();
        let job = job
            .replace(
                "path: ../data/cdnow/transactions.parquet",
                &format!("path: s3://{bucket}/{prefix}/input/transactions.parquet"),
            )
            .replace(
                "path: ../out/customer_value",
                &format!("path: s3://{bucket}/{prefix}/out/customer_value"),
            )
            .replace(
                "path: ../out/customer_models",
                &format!("path: s3://{bucket}/{prefix}/out/customer_models"),
            );
        assert_eq!(
            job.matches("s3://").count(),
            3,
            "the main job changed its paths"
        );
        let file = format!("jobs/{prefix}.yaml");
        workspace.write(&file, format!("{job}{}", self.storage_yaml()));
        file
    }

    /// Returns a client of `bucket` with the key that may use it.
    pub fn client(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        let (key_id, secret) = if bucket == self.second_bucket {
            ("CRA_TEST_S3_SECOND_KEY_ID", "CRA_TEST_S3_SECOND_SECRET")
        } else {
            ("CRA_TEST_S3_ACCESS_KEY_ID", "CRA_TEST_S3_SECRET_ACCESS_KEY")
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_bucket_name(bucket)
            .with_access_key_id(var(key_id))
            .with_secret_access_key(var(secret))
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .build()
            .unwrap();
        Arc::new(store)
    }

    /// Uploads a local file to `key` in the main bucket.
    pub fn upload(&self, file: &Path, key: &str) {
        let bytes = std::fs::read(file).unwrap();
        let store = self.client(&self.bucket);
        self.runtime
            .block_on(
                store.put(&ObjectPath::parse(key).unwrap(), PutPayload::from(bytes)),
            )
            .unwrap();
    }

    /// Returns every object below `prefix` of `bucket`, by key relative to the
    /// prefix, with its contents.
    pub fn snapshot(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let store = self.client(bucket);
        self.runtime.block_on(async {
            let root = ObjectPath::parse(prefix).unwrap();
            let objects: Vec<_> = store.list(Some(&root)).try_collect().await.unwrap();
            let mut files = BTreeMap::new();
            for meta in objects {
                let bytes = store
                    .get(&meta.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let relative = meta.location.as_ref()[prefix.len()..]
                    .trim_start_matches('/')
                    .to_string();
                files.insert(relative, bytes.to_vec());
            }
            files
        })
    }

    /// Returns the keys below `prefix` of the main bucket, relative to it.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let store = self.client(&self.bucket);
        self.runtime.block_on(async {
            let root = ObjectPath::parse(prefix).unwrap();
            match store.list(Some(&root)).try_collect::<Vec<_>>().await {
                Ok(objects) => objects
                    .into_iter()
                    .map(|meta| {
                        meta.location.as_ref()[prefix.len()..]
                            .trim_start_matches('/')
                            .to_string()
                    })
                    .collect(),
                Err(_) => Vec::new(),
            }
        })
    }

    /// Returns true when `key` exists in the main bucket.
    pub fn exists(&self, key: &str) -> bool {
        let store = self.client(&self.bucket);
        self.runtime
            .block_on(store.head(&ObjectPath::parse(key).unwrap()))
            .is_ok()
    }

    /// Copies every object below `prefix` of the main bucket into `dir`.
    pub fn download(&self, prefix: &str, dir: &Path) {
        for (relative, bytes) in self.snapshot(&self.bucket, prefix) {
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    /// Kills the server by the process id `scripts/garage` recorded.
    pub fn kill(&self) {
        let pid_file = Path::new(&var("CRA_TEST_S3_DIR")).join("pid");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success(), "cannot kill Garage (pid {pid})");
        // Wait until the port is closed, so the restart can bind it.
        let address = self.endpoint.trim_start_matches("http://").to_string();
        for _ in 0..100 {
            if std::net::TcpStream::connect(&address).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("Garage still answers on {address} after kill");
    }

    /// Starts the server again on its data and ports, records its process id
    /// for `scripts/garage stop`, and waits until it responds.
    pub fn restart(&self) {
        let dir = var("CRA_TEST_S3_DIR");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(Path::new(&dir).join("server.log"))
            .unwrap();
        // The server outlives this test process; scripts/test stops it by the
        // process id written below, so nothing here waits for it.
        #[allow(clippy::zombie_processes)]
        let child = std::process::Command::new(var("CRA_TEST_GARAGE_BIN"))
            .args(["-c", &format!("{dir}/garage.toml"), "server"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(Path::new(&dir).join("pid"), child.id().to_string()).unwrap();
        let store = self.client(&self.bucket);
        for _ in 0..200 {
            let answered = self
                .runtime
                .block_on(store.list_with_delimiter(None))
                .is_ok();
            if answered {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("Garage did not answer after the restart");
    }
}
