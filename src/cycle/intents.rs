//! Intent before act: the records that say what a cycle is about to stop or
//! remove (committed to the spool, and to the intent journal, before the act
//! stage), and, at start, what became of the intents of a cycle that never
//! finished (gestor was killed in the middle of it).

use crate::collect::usage::Usage;
use crate::decide::plan::{Action, Plan};
use crate::docker::client::DockerClient;
use crate::docker::container::short_id;
use crate::ship::journal::{Intent, Pending};
use crate::ship::records::{Record, RecordContext};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// The intent records of the kills and removals this cycle may carry out
/// (not those waiting for a retry), and the same as journal entries.
pub fn for_plan(
    ctx: &RecordContext<'_>,
    plan: &Plan,
    usage: &HashMap<String, Usage>,
    waiting: &HashSet<String>,
) -> (Vec<Record>, Vec<Intent>) {
    let mut records = Vec::new();
    let mut intents = Vec::new();
    for v in plan.kills().chain(plan.removals()) {
        if waiting.contains(&v.id) {
            continue;
        }
        let (action, verb) = match v.action {
            Action::Kill => ("kill", "stop and remove"),
            _ => ("remove", "remove"),
        };
        let reason = format!("about to {verb} {}: {}", v.name, v.reason);
        let mut r = ctx.container_record(
            "intent",
            &v.id,
            &v.name,
            v.container_type,
            usage.get(&v.id),
            reason.clone(),
        );
        r.details = serde_json::json!({ "action": action });
        intents.push(Intent {
            record_id: r.id.clone(),
            run_id: r.run_id.clone(),
            cycle: r.cycle,
            container_id: v.id.clone(),
            container_name: v.name.clone(),
            container_type: v.container_type.as_str().to_string(),
            action: action.to_string(),
            reason,
        });
        records.push(r);
    }
    (records, intents)
}

/// What the intents of unfinished cycles came to, as records, and the
/// journal files that are then resolved. Each container is inspected: gone
/// means the act was done; stopped but still there means the stop was done
/// and the removal not, so it is removed now; still running means gestor
/// ended before it could act (the policy judges it again). A container that
/// cannot be inspected now leaves its file for the next start.
pub async fn recover(
    ctx: &RecordContext<'_>,
    docker: &DockerClient,
    pending: Vec<Pending>,
) -> (Vec<Record>, Vec<PathBuf>) {
    let mut records = Vec::new();
    let mut resolved = Vec::new();
    for file in pending {
        let mut file_records = Vec::new();
        let mut unresolved = false;
        for i in &file.intents {
            let origin = format!("run {} cycle {}", short_run(&i.run_id), i.cycle);
            let record = |event: &str, reason: String| {
                let mut r = ctx.record(event, reason);
                r.container_id = Some(i.container_id.clone());
                r.container_name = Some(i.container_name.clone());
                r.container_type = Some(i.container_type.clone());
                r.details = serde_json::json!({ "intent": i.record_id, "recovered": true });
                r
            };
            let (done_event, failed_event) = if i.action == "kill" {
                ("kill", "kill_failed")
            } else {
                ("remove", "remove_failed")
            };
            match docker.inspect(&i.container_id).await {
                Ok(None) => file_records.push(record(
                    done_event,
                    format!(
                        "{}: {} is gone: the {} gestor began before it ended ({origin}) was done",
                        i.container_type, i.container_name, i.action
                    ),
                )),
                Ok(Some(c)) if !c.is_running() => match docker.remove(&i.container_id).await {
                    Ok(()) => file_records.push(record(
                        done_event,
                        format!(
                            "{}: {} removed now: gestor ended after stopping it ({origin}); {}",
                            i.container_type, i.container_name, i.reason
                        ),
                    )),
                    Err(e) => file_records.push(record(
                        failed_event,
                        format!(
                            "{}: cannot remove {} that gestor had stopped ({origin}): {e}",
                            i.container_type, i.container_name
                        ),
                    )),
                },
                Ok(Some(_)) => file_records.push(record(
                    failed_event,
                    format!(
                        "{}: {} not stopped: gestor ended before it could ({origin}); judged again",
                        i.container_type, i.container_name
                    ),
                )),
                Err(e) => {
                    tracing::warn!(container = %short_id(&i.container_id), error = %e, "cannot check an unfinished intent; tried again at the next start");
                    unresolved = true;
                }
            }
        }
        if unresolved {
            continue;
        }
        tracing::info!(file = %file.path.display(), intents = file.intents.len(), "resolved the intents of a cycle that did not finish");
        for r in &file_records {
            tracing::info!(event = %r.event, cycle = ctx.cycle, container = r.container_name.as_deref().unwrap_or(""), reason = %r.reason, "recovered an unfinished act");
        }
        records.extend(file_records);
        resolved.push(file.path);
    }
    (records, resolved)
}

fn short_run(run_id: &str) -> &str {
    &run_id[..run_id.len().min(8)]
}
