//! `template.yaml` against the code and the deployment's rules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use deploy_checks::{
    Intrinsic, Resource, Template, Value, allowed_actions, at, intrinsic, repo_root,
    role_statements, scalar_text, table_mismatches,
};
use store::schema::{IndexDef, KeyDef, TABLE, TableDef};

fn template() -> Template {
    Template::repo().unwrap_or_else(|e| panic!("template.yaml: {e}"))
}

fn only<'a>(t: &'a Template, kind: &'a str) -> Resource<'a> {
    let all: Vec<Resource> = t.resources_of_type(kind).collect();
    assert_eq!(all.len(), 1, "exactly one {kind}");
    all[0]
}

fn resource<'a>(t: &'a Template, id: &str) -> Resource<'a> {
    t.resource(id)
        .unwrap_or_else(|| panic!("template.yaml has no resource {id}"))
}

/// The resource named by `!Ref X`, `!GetAtt X.Attr` or `!Sub "...${X}..."` (the first one).
fn referenced(value: &Value) -> Option<String> {
    match intrinsic(value)? {
        Intrinsic::Ref(name) => Some(name.to_owned()),
        Intrinsic::GetAtt(target) => target.split('.').next().map(str::to_owned),
        Intrinsic::Sub(text) => {
            let start = text.find("${")? + 2;
            let end = start + text[start..].find('}')?;
            text[start..end].split('.').next().map(str::to_owned)
        }
        Intrinsic::Other(..) => None,
    }
}

fn sub_text(value: &Value) -> Option<&str> {
    match intrinsic(value)? {
        Intrinsic::Sub(text) => Some(text),
        _ => None,
    }
}

/// The function whose role is `role_id`.
fn role_of<'a>(t: &'a Template, function_id: &str) -> Resource<'a> {
    let function = resource(t, function_id);
    let role = function
        .property(&["Role"])
        .and_then(referenced)
        .unwrap_or_else(|| panic!("{function_id} has no Role: !GetAtt <role>.Arn"));
    resource(t, &role)
}

/// The Cargo binary a function is built from.
fn binary_of(function: Resource) -> String {
    function
        .metadata(&["BuildProperties", "Binary"])
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{} has no Metadata.BuildProperties.Binary", function.id))
        .to_owned()
}

/// The crate directory under `functions/` whose Cargo.toml names `binary` (as its package or a bin).
fn crate_with_binary(binary: &str) -> Option<PathBuf> {
    let wanted = format!("name = \"{binary}\"");
    let dirs = std::fs::read_dir(repo_root().join("functions")).ok()?;
    dirs.filter_map(Result::ok).map(|e| e.path()).find(|dir| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == wanted))
    })
}

fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

fn functions(t: &Template) -> Vec<Resource<'_>> {
    t.resources_of_type("AWS::Serverless::Function").collect()
}

// ------------------------------------------------------------------------------------------ the table

#[test]
fn the_table_is_the_one_the_code_defines() {
    let t = template();
    let table = only(&t, "AWS::DynamoDB::Table");
    let props = table
        .value()
        .get("Properties")
        .expect("the table has Properties");
    let problems = table_mismatches(props, &TABLE);
    assert!(
        problems.is_empty(),
        "template.yaml's table differs from store::schema::TABLE:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        at(
            props,
            &[
                "PointInTimeRecoverySpecification",
                "PointInTimeRecoveryEnabled"
            ]
        )
        .and_then(Value::as_bool),
        Some(true),
        "point-in-time recovery"
    );
    assert_eq!(
        at(props, &["SSESpecification", "SSEEnabled"]).and_then(Value::as_bool),
        Some(true),
        "encryption at rest with a KMS key"
    );
    assert_eq!(
        table.value().get("DeletionPolicy").and_then(Value::as_str),
        Some("Retain"),
        "deleting the stack keeps the data"
    );
}

/// The comparison is not vacuous: a change to the code's definition or to the template is reported.
#[test]
fn a_change_on_either_side_is_noticed() {
    let t = template();
    let props = only(&t, "AWS::DynamoDB::Table")
        .value()
        .get("Properties")
        .expect("the table has Properties")
        .clone();

    const OTHER_INDEX: &[IndexDef] = &[
        TABLE.indexes[0],
        IndexDef {
            name: "gsi2",
            key: KeyDef {
                partition: "gsi2pk",
                sort: "gsi2sk",
            },
            projection_all: true,
        },
    ];
    const KEYS_ONLY: &[IndexDef] = &[IndexDef {
        projection_all: false,
        ..TABLE.indexes[0]
    }];
    let code_changes: [(&str, TableDef); 7] = [
        (
            "no stream",
            TableDef {
                stream_new_and_old_images: false,
                ..TABLE
            },
        ),
        (
            "another TTL attribute",
            TableDef {
                ttl_attribute: "ttl",
                ..TABLE
            },
        ),
        (
            "provisioned capacity",
            TableDef {
                on_demand: false,
                ..TABLE
            },
        ),
        (
            "a second index",
            TableDef {
                indexes: OTHER_INDEX,
                ..TABLE
            },
        ),
        (
            "a keys-only projection",
            TableDef {
                indexes: KEYS_ONLY,
                ..TABLE
            },
        ),
        (
            "no index",
            TableDef {
                indexes: &[],
                ..TABLE
            },
        ),
        (
            "another sort key",
            TableDef {
                key: KeyDef {
                    partition: "pk",
                    sort: "rk",
                },
                ..TABLE
            },
        ),
    ];
    for (what, def) in code_changes {
        assert!(
            !table_mismatches(&props, &def).is_empty(),
            "the code's table with {what} must differ from the template's"
        );
    }

    let edit = |path: &[&str], value: Option<Value>| {
        let mut changed = props.clone();
        let (last, parents) = path.split_last().expect("a path");
        let mut node = &mut changed;
        for key in parents {
            node = match key.parse::<usize>() {
                Ok(i) => node.get_mut(i),
                Err(_) => node.get_mut(*key),
            }
            .expect("the path exists");
        }
        let map = node.as_mapping_mut().expect("a mapping");
        match value {
            Some(v) => {
                map.insert(Value::from(*last), v);
            }
            None => {
                map.remove(*last);
            }
        }
        changed
    };
    let template_changes = [
        (
            "a keys-only index",
            edit(
                &[
                    "GlobalSecondaryIndexes",
                    "0",
                    "Projection",
                    "ProjectionType",
                ],
                Some("KEYS_ONLY".into()),
            ),
        ),
        ("no TTL", edit(&["TimeToLiveSpecification"], None)),
        ("no stream", edit(&["StreamSpecification"], None)),
        (
            "a stream of new images only",
            edit(
                &["StreamSpecification", "StreamViewType"],
                Some("NEW_IMAGE".into()),
            ),
        ),
        (
            "a disabled stream",
            edit(
                &["StreamSpecification", "StreamEnabled"],
                Some(Value::Bool(false)),
            ),
        ),
        (
            "another TTL attribute",
            edit(
                &["TimeToLiveSpecification", "AttributeName"],
                Some("ttl".into()),
            ),
        ),
        ("provisioned capacity", edit(&["BillingMode"], None)),
        (
            "a numeric key",
            edit(
                &["AttributeDefinitions", "1", "AttributeType"],
                Some("N".into()),
            ),
        ),
        (
            "keys swapped",
            edit(&["KeySchema", "0", "AttributeName"], Some("sk".into())),
        ),
        (
            "a local index",
            edit(&["LocalSecondaryIndexes"], Some(Value::Sequence(vec![]))),
        ),
        (
            "a renamed index",
            edit(
                &["GlobalSecondaryIndexes", "0", "IndexName"],
                Some("byStatus".into()),
            ),
        ),
    ];
    for (what, changed) in template_changes {
        assert!(
            !table_mismatches(&changed, &TABLE).is_empty(),
            "a template with {what} must differ from the code's table"
        );
    }
}

// ------------------------------------------------------------------------------------------ functions

#[test]
fn the_functions_are_rust_binaries_built_by_cargo_lambda() {
    let t = template();
    let mut binaries = BTreeSet::new();
    for f in functions(&t) {
        let setting = |path: &[&str]| t.function_setting(f, path).and_then(scalar_text);
        assert_eq!(
            setting(&["Runtime"]).as_deref(),
            Some("provided.al2023"),
            "{}",
            f.id
        );
        assert_eq!(
            setting(&["Handler"]).as_deref(),
            Some("bootstrap"),
            "{}",
            f.id
        );
        assert_eq!(
            f.metadata(&["BuildMethod"]).and_then(Value::as_str),
            Some("rust-cargolambda"),
            "{}",
            f.id
        );
        // cargo lambda writes target/lambda/<binary>/bootstrap under the workspace root, where SAM looks.
        assert_eq!(setting(&["CodeUri"]).as_deref(), Some("."), "{}", f.id);
        let binary = binary_of(f);
        assert!(
            crate_with_binary(&binary).is_some(),
            "{}: no crate under functions/ builds a binary named {binary}",
            f.id
        );
        binaries.insert(binary);
    }
    assert_eq!(
        binaries,
        BTreeSet::from([
            "webhook".into(),
            "config-api".into(),
            "sender".into(),
            "stream".into(),
            "recover".into()
        ])
    );

    let architectures = t
        .function_global(&["Architectures"])
        .and_then(Value::as_sequence)
        .expect("Globals.Function.Architectures");
    assert_eq!(architectures.len(), 1);
    assert_eq!(
        intrinsic(&architectures[0]),
        Some(Intrinsic::Ref("Architecture"))
    );
    assert_eq!(
        t.parameter_default("Architecture").as_deref(),
        Some("arm64")
    );
    for f in functions(&t) {
        assert!(
            f.property(&["Architectures"]).is_none(),
            "{} follows the parameter",
            f.id
        );
    }
}

/// The environment names the template sets are ones the function's code reads, and the settings its
/// `config.rs` reads are set (except the optional ones listed here, which have sensible defaults).
#[test]
fn every_environment_variable_is_one_the_code_reads() {
    // RUST_LOG is read by the tracing subscriber's filter, not by our code.
    const READ_BY_LIBRARIES: &[&str] = &["RUST_LOG"];
    // Settings for local runs only: a CA for SMTP servers with their own certificate.
    const LOCAL_ONLY: &[&str] = &[
        "SMTP_EXTRA_CA_PEM",
        "SMTP_EXTRA_CA_FILE",
        "SMTP_EXTRA_CA_PEM_FILE",
    ];
    let t = template();
    for f in functions(&t) {
        let dir = crate_with_binary(&binary_of(f)).expect("the function's crate");
        let mut sources = String::new();
        rust_sources(&dir.join("src"), &mut sources);
        let set: Vec<&str> = t
            .function_environment(f)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for name in &set {
            if READ_BY_LIBRARIES.contains(name) {
                continue;
            }
            assert!(
                sources.contains(&format!("\"{name}\"")),
                "{} sets {name}, which {} never reads",
                f.id,
                dir.display()
            );
        }
        let config = std::fs::read_to_string(dir.join("src/config.rs")).unwrap_or_default();
        for name in env_names(&config) {
            if LOCAL_ONLY.contains(&name.as_str()) {
                continue;
            }
            assert!(
                set.contains(&name.as_str()),
                "{} reads {name} (src/config.rs), which template.yaml does not set: set it there (or list \
                 it in LOCAL_ONLY here if it matters only locally)",
                f.id
            );
        }
    }
}

/// String literals that look like environment variable names: `"UPPER_CASE"`.
fn env_names(source: &str) -> BTreeSet<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 3
                && s.contains('_')
                && s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_functions_know_the_api_url_and_share_the_secrets_prefix() {
    let t = template();
    let api_url = t
        .root()
        .get("Outputs")
        .and_then(|o| at(o, &["ApiBaseUrl", "Value"]))
        .and_then(sub_text)
        .expect("Outputs.ApiBaseUrl is a !Sub");
    assert!(api_url.contains("${HttpApi}"), "{api_url}");
    let env = |id: &str, name: &str| {
        let f = resource(&t, id);
        t.function_environment(f)
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{id} has no {name}"))
    };
    assert_eq!(
        sub_text(&env("ConfigApiFunction", "PUBLIC_BASE_URL")),
        Some(api_url)
    );
    assert_eq!(
        sub_text(&env("SenderFunction", "TRACKING_BASE_URL")),
        Some(api_url)
    );
    assert_eq!(
        env("ConfigApiFunction", "SECRETS_PREFIX"),
        env("SenderFunction", "SECRETS_PREFIX")
    );
    for (id, name) in [
        ("WebhookFunction", "WEBHOOK_PASSWORD_SECRET"),
        ("ConfigApiFunction", "WEBHOOK_PASSWORD_SECRET"),
        ("WebhookFunction", "TRACKING_KEY_SECRET"),
        ("SenderFunction", "TRACKING_KEY_SECRET"),
        ("ConfigApiFunction", "ADMIN_KEY_SECRET"),
    ] {
        let secret = referenced(&env(id, name)).unwrap_or_else(|| panic!("{id} {name}"));
        assert_eq!(
            resource(&t, &secret).kind(),
            Some("AWS::SecretsManager::Secret"),
            "{id} {name}"
        );
    }
}

#[test]
fn secrets_are_generated_and_url_safe() {
    let t = template();
    let secrets: Vec<Resource> = t.resources_of_type("AWS::SecretsManager::Secret").collect();
    assert_eq!(
        secrets.len(),
        3,
        "webhook password, tracking key, admin key"
    );
    for s in secrets {
        let generate = s
            .property(&["GenerateSecretString"])
            .unwrap_or_else(|| panic!("{} is generated by Secrets Manager", s.id));
        assert!(s.property(&["SecretString"]).is_none(), "{}", s.id);
        assert_eq!(
            generate.get("ExcludePunctuation").and_then(Value::as_bool),
            Some(true),
            "{}: letters and digits only (it may travel in a URL or a header)",
            s.id
        );
        let length = generate
            .get("PasswordLength")
            .and_then(Value::as_u64)
            .unwrap_or(32);
        assert!(length >= 32, "{}: {length} characters", s.id);
    }
}

// ------------------------------------------------------------------------------------------ the queue

#[test]
fn the_send_queue_fits_the_sender() {
    let t = template();
    let sender = resource(&t, "SenderFunction");
    let timeout = t
        .function_setting(sender, &["Timeout"])
        .and_then(|v| t.number(v))
        .expect("the sender's Timeout");
    let events = sender
        .property(&["Events"])
        .and_then(Value::as_mapping)
        .expect("the sender's Events");
    let sqs: Vec<&Value> = events
        .values()
        .filter(|e| e.get("Type").and_then(Value::as_str) == Some("SQS"))
        .collect();
    assert_eq!(sqs.len(), 1, "one SQS trigger");
    let event = sqs[0].get("Properties").expect("the trigger's Properties");
    let queue_id = event
        .get("Queue")
        .and_then(referenced)
        .expect("Queue: !GetAtt <queue>.Arn");
    let queue = resource(&t, &queue_id);

    let visibility = queue
        .property(&["VisibilityTimeout"])
        .and_then(|v| t.number(v))
        .expect("the queue's VisibilityTimeout");
    assert!(
        visibility >= 6.0 * timeout,
        "visibility timeout {visibility} s must be at least six times the sender's {timeout} s"
    );
    let max_receive = queue
        .property(&["RedrivePolicy", "maxReceiveCount"])
        .and_then(|v| t.number(v))
        .expect("RedrivePolicy.maxReceiveCount");
    assert!(max_receive >= 5.0, "maxReceiveCount {max_receive}");
    let dlq_id = queue
        .property(&["RedrivePolicy", "deadLetterTargetArn"])
        .and_then(referenced)
        .expect("RedrivePolicy.deadLetterTargetArn");
    let dlq = resource(&t, &dlq_id);
    let retention = |q: Resource| {
        q.property(&["MessageRetentionPeriod"])
            .and_then(|v| t.number(v))
            .unwrap_or(345_600.0)
    };
    // A redriven message keeps its first enqueue time: the DLQ must keep messages longer.
    assert!(
        retention(dlq) > retention(queue),
        "the DLQ keeps messages longer"
    );

    // A claim outlives the invocation that took it, and lapses before SQS hands the job out again.
    let lease = t
        .function_environment(sender)
        .into_iter()
        .find(|(n, _)| *n == "CLAIM_LEASE_SECONDS")
        .and_then(|(_, v)| t.number(v))
        .expect("the sender's CLAIM_LEASE_SECONDS");
    assert!(
        lease > timeout && lease <= visibility,
        "claim lease {lease} s must exceed the sender's timeout ({timeout} s) and not the visibility \
         timeout ({visibility} s)"
    );

    let types: Vec<&str> = event
        .get("FunctionResponseTypes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types, ["ReportBatchItemFailures"]);
    let batch = event
        .get("BatchSize")
        .and_then(|v| t.number(v))
        .expect("BatchSize");
    assert!(
        batch >= 500.0,
        "a batch of {batch} cannot fill a Postmark batch call of 500"
    );
    let window = event
        .get("MaximumBatchingWindowInSeconds")
        .and_then(|v| t.number(v))
        .unwrap_or(0.0);
    assert!(
        window >= 1.0,
        "SQS needs a batching window for batches over 10"
    );
    let concurrency = event
        .get("ScalingConfig")
        .and_then(|s| s.get("MaximumConcurrency"))
        .and_then(intrinsic)
        .expect("ScalingConfig.MaximumConcurrency");
    let Intrinsic::Ref(parameter) = concurrency else {
        panic!("MaximumConcurrency is a parameter")
    };
    let default = t.parameter_default(parameter).expect("a default");
    assert!(default.parse::<u32>().is_ok_and(|n| n >= 2), "{default}");

    let alarms: Vec<Resource> = t
        .resources_of_type("AWS::CloudWatch::Alarm")
        .filter(|a| {
            a.property(&["MetricName"]).and_then(Value::as_str)
                == Some("ApproximateNumberOfMessagesVisible")
                && a.property(&["Dimensions"])
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .any(|d| d.get("Value").and_then(referenced).as_deref() == Some(&dlq_id))
        })
        .collect();
    assert_eq!(alarms.len(), 1, "an alarm on the DLQ's depth");
    let alarm = alarms[0];
    assert_eq!(
        alarm.property(&["Threshold"]).and_then(|v| t.number(v)),
        Some(0.0)
    );
    assert_eq!(
        alarm
            .property(&["ComparisonOperator"])
            .and_then(Value::as_str),
        Some("GreaterThanThreshold")
    );
}

/// The sender's timing settings agree: a claim outlives its invocation and lapses before SQS hands the
/// job out again; at least one Postmark call fits in an invocation with its deadline margin; the retry
/// schedule, with the queue's maxReceiveCount, rides out a day of Postmark outage before anything reaches
/// the dead-letter queue, and the queue keeps messages longer than that schedule.
#[test]
fn the_senders_timings_ride_out_a_day_of_outage() {
    let t = template();
    let sender = resource(&t, "SenderFunction");
    let env = t.function_environment(sender);
    let setting = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| t.number(v))
            .unwrap_or_else(|| panic!("the sender's {name}"))
    };
    let timeout = t
        .function_setting(sender, &["Timeout"])
        .and_then(|v| t.number(v))
        .expect("the sender's Timeout");
    let queue = resource(&t, "SendQueue");
    let number = |path: &[&str]| {
        queue
            .property(path)
            .and_then(|v| t.number(v))
            .unwrap_or_else(|| panic!("the queue's {path:?}"))
    };
    let (visibility, max_receive, retention) = (
        number(&["VisibilityTimeout"]),
        number(&["RedrivePolicy", "maxReceiveCount"]),
        number(&["MessageRetentionPeriod"]),
    );
    let (lease, call, margin) = (
        setting("CLAIM_LEASE_SECONDS"),
        setting("POSTMARK_TIMEOUT_SECONDS"),
        setting("DEADLINE_MARGIN_SECONDS"),
    );
    assert!(
        lease > timeout,
        "claim lease {lease} s ≤ timeout {timeout} s"
    );
    assert!(
        lease < visibility,
        "claim lease {lease} s ≥ visibility {visibility} s"
    );
    // An SMTP message may take twice the timeout (connect, then the exchange).
    assert!(
        2.0 * call + margin < timeout,
        "a {call} s call (SMTP: twice that) with a {margin} s margin does not fit in {timeout} s"
    );
    let schedule = sender::Backoff {
        base: Duration::from_secs_f64(setting("RETRY_BASE_SECONDS")),
        max: Duration::from_secs_f64(setting("RETRY_MAX_SECONDS")),
    };
    let receives = max_receive as u32;
    let rides_out = schedule.rides_out(receives);
    assert!(
        rides_out >= Duration::from_secs(24 * 3600),
        "{receives} receives ride out only {} h",
        rides_out.as_secs() / 3600
    );
    let longest: Duration = (1..receives).map(|n| schedule.ceiling(n)).sum();
    assert!(
        Duration::from_secs_f64(retention) > longest,
        "the queue drops messages after {retention} s, before the schedule's {} s end",
        longest.as_secs()
    );
}

// ------------------------------------------------------------------------------------------ IAM

#[test]
fn no_policy_allows_every_action_or_every_resource() {
    let t = template();
    let roles: Vec<Resource> = t.resources_of_type("AWS::IAM::Role").collect();
    assert_eq!(roles.len(), functions(&t).len(), "one role per function");
    for role in &roles {
        assert!(
            role.property(&["ManagedPolicyArns"]).is_none(),
            "{}: inline policies only",
            role.id
        );
        for s in role_statements(*role) {
            assert_eq!(s.effect, "Allow", "{} {:?}", role.id, s.sid);
            assert!(!s.actions.is_empty(), "{} {:?}", role.id, s.sid);
            for action in &s.actions {
                assert!(
                    *action != "*" && !action.ends_with(":*"),
                    "{} allows {action}",
                    role.id
                );
            }
            assert!(!s.resources.is_empty(), "{} {:?}", role.id, s.sid);
            for r in &s.resources {
                assert!(
                    !matches!(r, Value::String(_)),
                    "{} {:?}: resource {r:?} is written out; name it with !Ref, !GetAtt or !Sub",
                    role.id,
                    s.sid
                );
            }
        }
    }
    for f in functions(&t) {
        assert!(
            f.property(&["Policies"]).is_none(),
            "{}: its role holds its permissions",
            f.id
        );
        let role = role_of(&t, f.id);
        assert_eq!(role.kind(), Some("AWS::IAM::Role"));
        assert_eq!(
            roles.iter().filter(|r| r.id == role.id).count(),
            1,
            "{} has a role of its own",
            f.id
        );
    }
}

#[test]
fn the_webhook_can_neither_scan_nor_delete() {
    let t = template();
    let actions = allowed_actions(role_of(&t, "WebhookFunction"));
    for forbidden in [
        "dynamodb:Scan",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:Query",
    ] {
        assert!(
            !actions.contains(&forbidden),
            "the webhook may not {forbidden}"
        );
    }
    assert!(
        actions
            .iter()
            .filter(|a| a.starts_with("secretsmanager:"))
            .all(|a| *a == "secretsmanager:GetSecretValue"),
        "the webhook only reads secrets"
    );
    for f in functions(&t) {
        let actions = allowed_actions(role_of(&t, f.id));
        assert!(
            !actions.contains(&"dynamodb:Scan"),
            "{}: no access pattern scans",
            f.id
        );
    }
}

/// What the DynamoDB stream's event source mapping needs of the function's role.
const STREAM_READ: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

#[test]
fn table_access_names_the_table_and_its_indexes_only() {
    let t = template();
    let table = only(&t, "AWS::DynamoDB::Table").id;
    let allowed: Vec<String> = std::iter::once(format!("${{{table}.Arn}}"))
        .chain(
            TABLE
                .indexes
                .iter()
                .map(|i| format!("${{{table}.Arn}}/index/{}", i.name)),
        )
        .collect();
    for role in t.resources_of_type("AWS::IAM::Role") {
        for s in role_statements(role) {
            if !s.actions.iter().any(|a| a.starts_with("dynamodb:")) {
                continue;
            }
            assert!(
                s.actions.iter().all(|a| a.starts_with("dynamodb:")),
                "{}",
                role.id
            );
            let reads_stream = s.actions.iter().all(|a| STREAM_READ.contains(a));
            assert!(
                reads_stream || !s.actions.iter().any(|a| STREAM_READ.contains(a)),
                "{} {:?}: stream reads in a statement of their own",
                role.id,
                s.sid
            );
            for r in &s.resources {
                let ok = match intrinsic(r) {
                    Some(Intrinsic::GetAtt(target)) if reads_stream => {
                        target == format!("{table}.StreamArn")
                    }
                    Some(Intrinsic::GetAtt(target)) => target == format!("{table}.Arn"),
                    Some(Intrinsic::Sub(text)) => allowed.iter().any(|a| a == text),
                    _ => false,
                };
                assert!(ok, "{}: table access on {r:?}", role.id);
            }
        }
    }
}

#[test]
fn the_config_api_manages_secrets_only_under_its_prefix() {
    let t = template();
    let config_api = resource(&t, "ConfigApiFunction");
    let prefix = t
        .function_environment(config_api)
        .into_iter()
        .find(|(n, _)| *n == "SECRETS_PREFIX")
        .and_then(|(_, v)| sub_text(v).map(str::to_owned))
        .expect("SECRETS_PREFIX is a !Sub");
    let servers = format!(
        "arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{prefix}/servers/*"
    );
    let password = resource(&t, "WebhookPasswordSecret").id;
    let reads = ["secretsmanager:GetSecretValue"];

    for s in role_statements(role_of(&t, "ConfigApiFunction")) {
        let writes: Vec<&str> = s
            .actions
            .iter()
            .copied()
            .filter(|a| a.starts_with("secretsmanager:") && !reads.contains(a))
            .collect();
        if writes.is_empty() {
            continue;
        }
        for r in &s.resources {
            match intrinsic(r) {
                Some(Intrinsic::Sub(text)) => assert_eq!(text, servers, "{:?}", s.sid),
                Some(Intrinsic::Ref(name)) => {
                    assert_eq!(name, password, "{:?}", s.sid);
                    assert_eq!(writes, ["secretsmanager:PutSecretValue"], "{:?}", s.sid);
                }
                _ => panic!("{:?}: secrets written on {r:?}", s.sid),
            }
        }
    }
    // The sender reads the same server secrets, and only reads.
    let sender = role_of(&t, "SenderFunction");
    let mut reads_servers = false;
    for s in role_statements(sender) {
        if s.actions.iter().any(|a| a.starts_with("secretsmanager:")) {
            assert_eq!(s.actions, reads, "{:?}", s.sid);
            reads_servers |= s.resources.iter().any(|r| sub_text(r) == Some(&servers));
        }
    }
    assert!(reads_servers, "the sender reads the server credentials");
}

// ------------------------------------------------------------------------------------------ the API

#[test]
fn every_route_reaches_its_function() {
    let t = template();
    let api = only(&t, "AWS::ApiGatewayV2::Api");
    assert_eq!(
        api.property(&["ProtocolType"]).and_then(Value::as_str),
        Some("HTTP")
    );
    let mut routes = BTreeSet::new();
    for route in t.resources_of_type("AWS::ApiGatewayV2::Route") {
        let key = route
            .property(&["RouteKey"])
            .and_then(Value::as_str)
            .expect("RouteKey");
        let integration = route
            .property(&["Target"])
            .and_then(sub_text)
            .and_then(|s| s.strip_prefix("integrations/${"))
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{}: Target is !Sub integrations/${{...}}", route.id));
        let integration = resource(&t, integration);
        assert_eq!(
            integration
                .property(&["PayloadFormatVersion"])
                .and_then(scalar_text)
                .as_deref(),
            Some("2.0"),
            "{}",
            integration.id
        );
        assert_eq!(
            integration
                .property(&["IntegrationType"])
                .and_then(Value::as_str),
            Some("AWS_PROXY")
        );
        let function = integration
            .property(&["IntegrationUri"])
            .and_then(referenced)
            .expect("IntegrationUri: !GetAtt <function>.Arn");
        routes.insert((key.to_owned(), function));
    }
    let webhook = "WebhookFunction".to_owned();
    let config = "ConfigApiFunction".to_owned();
    let expected: BTreeSet<(String, String)> = [
        ("POST /wh/postmark", &webhook),
        ("GET /t/o/{token}", &webhook),
        ("HEAD /t/o/{token}", &webhook),
        ("GET /t/c/{token}", &webhook),
        ("HEAD /t/c/{token}", &webhook),
        ("GET /api/health", &config),
        ("ANY /api/{proxy+}", &config),
    ]
    .into_iter()
    .map(|(k, f)| (k.to_owned(), f.clone()))
    .collect();
    assert_eq!(routes, expected);

    // The paths are the ones the functions serve.
    for (key, function) in &routes {
        let path = key.split_once(' ').map(|(_, p)| p).unwrap_or_default();
        let fixed = path.split('{').next().unwrap_or_default();
        let dir = crate_with_binary(&binary_of(resource(&t, function))).expect("crate");
        let mut sources = String::new();
        rust_sources(&dir.join("src"), &mut sources);
        assert!(
            sources.contains(fixed),
            "{} never mentions {fixed}",
            dir.display()
        );
    }

    // API Gateway may invoke each function it routes to.
    for function in [&webhook, &config] {
        let permitted = t.resources_of_type("AWS::Lambda::Permission").any(|p| {
            p.property(&["FunctionName"]).and_then(referenced).as_ref() == Some(function)
                && p.property(&["Principal"]).and_then(Value::as_str)
                    == Some("apigateway.amazonaws.com")
        });
        assert!(permitted, "API Gateway may invoke {function}");
    }
    let stage = only(&t, "AWS::ApiGatewayV2::Stage");
    assert_eq!(
        stage.property(&["StageName"]).and_then(Value::as_str),
        Some("$default")
    );
    assert_eq!(
        stage.property(&["AutoDeploy"]).and_then(Value::as_bool),
        Some(true)
    );
}

#[test]
fn the_outputs_give_the_urls() {
    let t = template();
    let outputs = t.root().get("Outputs").expect("Outputs");
    let value =
        |name: &str| at(outputs, &[name, "Value"]).unwrap_or_else(|| panic!("Outputs.{name}"));
    assert!(sub_text(value("WebhookUrl")).is_some_and(|s| s.ends_with("/wh/postmark")));
    assert!(sub_text(value("ConfigApiUrl")).is_some_and(|s| s.ends_with("/api")));
    assert_eq!(
        intrinsic(value("SendQueueUrl")),
        Some(Intrinsic::Ref("SendQueue"))
    );
    let bus = only(&t, "AWS::Events::EventBus").id;
    assert_eq!(intrinsic(value("FeedBusName")), Some(Intrinsic::Ref(bus)));
    assert_eq!(
        intrinsic(value("FeedBusArn")),
        Some(Intrinsic::GetAtt(&format!("{bus}.Arn")))
    );
}

// ------------------------------------------------------------------------------------------ the stream

/// The stream function reads the table's stream the way the counting needs: from the oldest record, one
/// batch at a time per shard, a failed batch retried whole (never split, never skipped while its records
/// are in the stream), and what is given up on kept; it publishes to the feed's bus, and only there.
#[test]
fn the_stream_function_takes_the_tables_stream_in_whole_batches() {
    let t = template();
    let table = only(&t, "AWS::DynamoDB::Table");
    assert_eq!(
        table
            .property(&["StreamSpecification", "StreamViewType"])
            .and_then(Value::as_str),
        Some("NEW_AND_OLD_IMAGES")
    );
    let function = resource(&t, "StreamFunction");
    assert_eq!(binary_of(function), "stream");
    let events = function
        .property(&["Events"])
        .and_then(Value::as_mapping)
        .expect("the stream function's Events");
    let sources: Vec<&Value> = events
        .values()
        .filter(|e| e.get("Type").and_then(Value::as_str) == Some("DynamoDB"))
        .collect();
    assert_eq!(events.len(), 1, "the stream is its only trigger");
    assert_eq!(sources.len(), 1, "one DynamoDB stream trigger");
    let source = sources[0]
        .get("Properties")
        .expect("the trigger's Properties");
    let setting = |name: &str| source.get(name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(
        intrinsic(setting("Stream")),
        Some(Intrinsic::GetAtt(&format!("{}.StreamArn", table.id)))
    );
    assert_eq!(setting("StartingPosition").as_str(), Some("TRIM_HORIZON"));
    let number = |name: &str| t.number(setting(name)).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(number("BatchSize"), 1000.0);
    assert_eq!(number("MaximumBatchingWindowInSeconds"), 1.0);
    assert_eq!(
        number("ParallelizationFactor"),
        1.0,
        "one batch per shard at a time"
    );
    assert_eq!(
        number("MaximumRetryAttempts"),
        -1.0,
        "a failed batch is retried until it succeeds"
    );
    assert_eq!(number("MaximumRecordAgeInSeconds"), -1.0);
    assert_ne!(
        source
            .get("BisectBatchOnFunctionError")
            .and_then(Value::as_bool),
        Some(true),
        "a failed batch is never split: the counting's markers are per batch"
    );
    assert!(
        source.get("FunctionResponseTypes").is_none(),
        "no partial batch answers: a batch succeeds or fails whole"
    );
    let dlq = source
        .get("DestinationConfig")
        .and_then(|d| at(d, &["OnFailure", "Destination"]))
        .and_then(referenced)
        .expect("DestinationConfig.OnFailure.Destination");
    assert_eq!(resource(&t, &dlq).kind(), Some("AWS::SQS::Queue"));

    let timeout = t
        .function_setting(function, &["Timeout"])
        .and_then(|v| t.number(v))
        .expect("the stream function's Timeout");
    assert!(
        timeout >= 30.0,
        "a batch of 1000 records needs {timeout} s or more"
    );

    let bus = only(&t, "AWS::Events::EventBus").id;
    let env = t.function_environment(function);
    let var = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("the stream function's {name}"))
    };
    assert_eq!(intrinsic(var("EVENT_BUS_NAME")), Some(Intrinsic::Ref(bus)));
    assert_eq!(intrinsic(var("TABLE_NAME")), Some(Intrinsic::Ref(table.id)));

    let statements = role_statements(role_of(&t, "StreamFunction"));
    let on = |action: &str| -> Vec<String> {
        statements
            .iter()
            .filter(|s| s.actions.contains(&action))
            .flat_map(|s| s.resources.iter().filter_map(|r| referenced(r)))
            .collect()
    };
    assert_eq!(
        on("events:PutEvents"),
        [bus],
        "it publishes to the feed's bus only"
    );
    for action in STREAM_READ {
        assert_eq!(on(action), [table.id], "{action}");
    }
    assert_eq!(
        on("sqs:SendMessage"),
        [dlq],
        "what it gives up on goes to its DLQ"
    );
    for f in functions(&t) {
        if f.id != function.id {
            assert!(
                !allowed_actions(role_of(&t, f.id)).contains(&"events:PutEvents"),
                "only the stream function publishes the feed, not {}",
                f.id
            );
        }
    }
}

#[test]
fn the_recovery_runs_on_a_schedule_one_run_at_a_time_and_its_failures_alarm() {
    let t = template();
    let function = resource(&t, "RecoverFunction");
    assert_eq!(binary_of(function), "recover");
    let events = function
        .property(&["Events"])
        .and_then(Value::as_mapping)
        .expect("the recovery function's Events");
    assert_eq!(events.len(), 1, "the schedule is its only trigger");
    let schedule = events.values().next().expect("its schedule");
    assert_eq!(
        schedule.get("Type").and_then(Value::as_str),
        Some("ScheduleV2")
    );
    let expression = schedule
        .get("Properties")
        .and_then(|p| p.get("ScheduleExpression"))
        .expect("a schedule expression");
    assert_eq!(
        intrinsic(expression),
        Some(Intrinsic::Ref("RecoverySchedule"))
    );
    assert_eq!(
        function
            .property(&["ReservedConcurrentExecutions"])
            .and_then(|v| t.number(v)),
        Some(1.0),
        "two runs at once would ask Postmark the same questions"
    );
    let alarms: Vec<Resource> = t
        .resources_of_type("AWS::CloudWatch::Alarm")
        .filter(|r| {
            r.property(&["Dimensions"])
                .and_then(Value::as_sequence)
                .is_some_and(|d| {
                    d.iter().any(|dim| {
                        dim.get("Value").and_then(intrinsic)
                            == Some(Intrinsic::Ref("RecoverFunction"))
                    })
                })
        })
        .collect();
    assert!(
        alarms
            .iter()
            .any(|a| { a.property(&["MetricName"]).and_then(Value::as_str) == Some("Errors") }),
        "an alarm on the recovery function's errors"
    );
    let statements = role_statements(role_of(&t, "RecoverFunction"));
    let actions: Vec<&str> = statements.iter().flat_map(|s| s.actions.clone()).collect();
    for forbidden in [
        "dynamodb:DeleteItem",
        "dynamodb:Scan",
        "dynamodb:BatchWriteItem",
    ] {
        assert!(!actions.contains(&forbidden), "{forbidden}");
    }
}

#[test]
fn the_log_level_never_lets_the_runtime_or_the_sdk_log_bodies() {
    let t = template();
    let allowed: Vec<&str> = t
        .parameter(&["LogLevel", "AllowedValues"])
        .and_then(Value::as_sequence)
        .expect("LogLevel lists its allowed values")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(allowed.contains(&"info"));
    for value in &allowed {
        for directive in value.split(',') {
            let (target, level) = directive.split_once('=').unwrap_or(("", directive));
            let verbose = matches!(level, "debug" | "trace");
            // A bare level applies to every crate (the runtime and the SDK among them).
            assert!(
                !(verbose && target.is_empty()),
                "{value}: {directive} raises every crate"
            );
            assert!(level != "trace", "{value}: trace logs raw events");
            assert!(
                !(verbose
                    && (target.starts_with("aws")
                        || target.starts_with("lambda")
                        || target.starts_with("hyper"))),
                "{value}: {directive}"
            );
        }
    }
}

#[test]
fn the_api_is_throttled_and_the_webhook_cannot_take_the_accounts_concurrency() {
    let t = template();
    let stage = only(&t, "AWS::ApiGatewayV2::Stage");
    for (setting, parameter) in [
        ("ThrottlingRateLimit", "ApiThrottleRateLimit"),
        ("ThrottlingBurstLimit", "ApiThrottleBurstLimit"),
    ] {
        let value = stage
            .property(&["DefaultRouteSettings", setting])
            .unwrap_or_else(|| panic!("the stage's {setting}"));
        assert_eq!(intrinsic(value), Some(Intrinsic::Ref(parameter)));
        assert!(
            t.parameter_default(parameter)
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|n| n > 0.0),
            "{parameter} has a default"
        );
    }
    let webhook = resource(&t, "WebhookFunction");
    assert_eq!(
        webhook
            .property(&["ReservedConcurrentExecutions"])
            .and_then(intrinsic),
        Some(Intrinsic::Ref("WebhookReservedConcurrency"))
    );
}
