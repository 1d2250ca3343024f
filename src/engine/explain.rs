//! `cra explain`: the logical and physical plan of each stage, and with
//! `--analyze` the plan of a stage after running it, with each operator's metrics.

use std::fmt::Write as _;
use std::path::Path;

use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{collect, displayable};

use super::{Engine, sql};
use crate::error::{Error, closest};
use crate::job::{JobPlan, StagePlan};

impl Engine {
    /// Returns the plans of the stages named by `only` (all when `None`) as text.
    ///
    /// The engine must be prepared. With `analyze`, each explained stage runs once,
    /// after the stages before it are registered as in a run: materialized ones
    /// are written to `scratch`, which the caller removes.
    pub async fn explain(
        &self,
        job: &JobPlan,
        only: Option<&str>,
        analyze: bool,
        scratch: &Path,
    ) -> Result<String, Error> {
        if let Some(name) = only
            && !job.stages.iter().any(|s| s.name == name)
        {
            let names = job.stages.iter().map(|s| s.name.as_str());
            let hint = match closest(name, names) {
                Some(near) => format!("did you mean '{near}'?"),
                None => format!(
                    "stages of {}: {}",
                    job.file,
                    job.stages
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(Error::invalid(format!(
                "{}: --stage '{name}': no such stage",
                job.file
            ))
            .with_hint(hint));
        }
        let mut text = String::new();
        if job.stages.is_empty() {
            text.push_str(&format!(
                "job {} has no stages; its outputs read the inputs directly\n",
                job.name
            ));
        }
        for stage in &job.stages {
            let explained = only.is_none_or(|name| name == stage.name);
            if explained {
                text.push_str(&self.explain_stage(job, stage, analyze).await?);
            }
            if only == Some(stage.name.as_str()) {
                break;
            }
            // Later stages read this one as a run would.
            let plan = self.plan_stage(job, stage).await?;
            if stage.materialize && analyze {
                let dir = crate::storage::Location::Local {
                    path: scratch.join(&stage.name),
                    display: String::new(),
                };
                self.materialize(job, stage, plan, &dir).await?;
            } else {
                self.register_view(stage, plan)?;
            }
        }
        Ok(text)
    }

    async fn explain_stage(
        &self,
        job: &JobPlan,
        stage: &StagePlan,
        analyze: bool,
    ) -> Result<String, Error> {
        let planning = |error: datafusion::error::DataFusionError| {
            sql::planning_error(job, stage, &error)
        };
        let plan = self.plan_stage(job, stage).await?;
        let state = self.ctx.state();
        let optimized = state.optimize(&plan).map_err(planning)?;
        let physical = state
            .create_physical_plan(&optimized)
            .await
            .map_err(planning)?;
        let kind = if stage.materialize {
            "materialized"
        } else {
            "view"
        };
        let mut text = String::new();
        let _ = writeln!(text, "stage {} ({kind})", stage.name);
        let _ = writeln!(text, "  logical plan:");
        for line in optimized.display_indent().to_string().lines() {
            let _ = writeln!(text, "    {line}");
        }
        if analyze {
            let started = std::time::Instant::now();
            let batches = collect(physical.clone(), self.ctx.task_ctx())
                .await
                .map_err(|error| sql::execution_error(job, stage, error))?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let _ = writeln!(
                text,
                "  physical plan with metrics ({rows} rows in {:.3} s):",
                started.elapsed().as_secs_f64()
            );
            let with_metrics = DisplayableExecutionPlan::with_metrics(physical.as_ref())
                .indent(true)
                .to_string();
            for line in with_metrics.lines() {
                let _ = writeln!(text, "    {line}");
            }
        } else {
            let _ = writeln!(text, "  physical plan:");
            for line in displayable(physical.as_ref())
                .indent(true)
                .to_string()
                .lines()
            {
                let _ = writeln!(text, "    {line}");
            }
        }
        text.push('\n');
        Ok(text)
    }
}
