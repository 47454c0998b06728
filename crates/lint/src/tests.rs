//! Every rule has at least one case that fires and one that does not.

use lockstep_connect::ConnectorConfig;
use lockstep_connectors::{Manifest, Suppression};

use super::*;

const PG: &str = "io.debezium.connector.postgresql.PostgresConnector";
const MYSQL: &str = "io.debezium.connector.mysql.MySqlConnector";
const SQLSERVER: &str = "io.debezium.connector.sqlserver.SqlServerConnector";
const DBZ_JDBC: &str = "io.debezium.connector.jdbc.JdbcSinkConnector";
const CF_JDBC: &str = "io.confluent.connect.jdbc.JdbcSinkConnector";
const JSON: &str = "org.apache.kafka.connect.json.JsonConverter";

fn converters() -> Vec<(&'static str, &'static str)> {
    vec![
        ("key.converter", JSON),
        ("key.converter.schemas.enable", "true"),
        ("value.converter", JSON),
        ("value.converter.schemas.enable", "true"),
    ]
}

fn good(kind: &str) -> Vec<(&'static str, &'static str)> {
    let mut c = converters();
    match kind {
        "pg" => c.extend([
            ("connector.class", PG),
            ("tasks.max", "1"),
            ("database.hostname", "pg-1"),
            ("database.dbname", "shop"),
            (
                "database.password",
                "${file:/run/secrets/pg.properties:password}",
            ),
            ("topic.prefix", "shop"),
            ("slot.name", "shop_cdc"),
            ("publication.name", "shop_cdc_pub"),
            ("publication.autocreate.mode", "filtered"),
            ("heartbeat.interval.ms", "10000"),
            ("snapshot.mode", "initial"),
            ("table.include.list", "public.orders"),
            ("decimal.handling.mode", "precise"),
        ]),
        "mysql" => c.extend([
            ("connector.class", MYSQL),
            ("tasks.max", "1"),
            ("database.password", "${env:MYSQL_PASSWORD}"),
            ("topic.prefix", "shopmy"),
            ("table.include.list", "shop.orders"),
            (
                "schema.history.internal.kafka.topic",
                "schema-history.shopmy",
            ),
            (
                "schema.history.internal.kafka.bootstrap.servers",
                "kafka:9092",
            ),
            ("snapshot.locking.mode", "minimal"),
        ]),
        "sqlserver" => c.extend([
            ("connector.class", SQLSERVER),
            ("tasks.max", "2"),
            ("database.names", "a,b"),
            ("topic.prefix", "mssql"),
            ("table.include.list", "dbo.orders"),
            (
                "schema.history.internal.kafka.topic",
                "schema-history.mssql",
            ),
            (
                "schema.history.internal.kafka.bootstrap.servers",
                "kafka:9092",
            ),
        ]),
        "dbz-jdbc" => c.extend([
            ("connector.class", DBZ_JDBC),
            ("tasks.max", "1"),
            ("topics", "shop.public.orders"),
            ("connection.url", "jdbc:postgresql://dr-db:5432/shop"),
            (
                "connection.password",
                "${file:/run/secrets/dr.properties:password}",
            ),
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
            ("delete.enabled", "true"),
            ("schema.evolution", "none"),
        ]),
        "cf-jdbc" => c.extend([
            ("connector.class", CF_JDBC),
            ("tasks.max", "1"),
            ("topics", "shop.public.orders"),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("delete.enabled", "true"),
            ("auto.create", "false"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "dlq.shop-sink"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
        ]),
        other => panic!("no base config {other}"),
    }
    c
}

/// `base` with `set` applied (a value of "" removes the key).
fn config(base: &str, set: &[(&str, &str)]) -> ConnectorConfig {
    let mut c: ConnectorConfig = good(base).into_iter().collect();
    for (k, v) in set {
        if v.is_empty() {
            c.remove(k);
        } else {
            c.insert(*k, *v);
        }
    }
    c
}

fn run(manifests: &[Manifest], profile: &str) -> Report {
    lint(
        manifests,
        &Profile::named(profile).expect("profile"),
        &Context::default(),
    )
}

fn rules_of(report: &Report) -> Vec<&'static str> {
    report.active().map(|f| f.rule).collect()
}

#[test]
fn good_configs_are_clean() {
    for kind in ["pg", "mysql", "sqlserver", "dbz-jdbc", "cf-jdbc"] {
        let m = Manifest::in_memory(kind, config(kind, &[]), "mem.yaml");
        let report = run(&[m], "regulated");
        assert!(report.findings.is_empty(), "{kind}: {:#?}", report.findings);
    }
}

#[test]
fn every_rule_fires_once_and_stays_quiet_when_fixed() {
    // (rule, base, change that fires it, change that does not)
    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
    );
    let cases: &[Case] = &[
        ("LS101", "pg", &[("value.converter", "")], &[("value.converter", JSON)]),
        ("LS101", "dbz-jdbc", &[("key.converter", ""), ("value.converter", "")], &[]),
        ("LS102", "pg", &[("value.converter.schemas.enable", "false")], &[("value.converter.schemas.enable", "true")]),
        ("LS102", "pg", &[("key.converter.schemas.enable", "false")], &[("key.converter", "io.confluent.connect.avro.AvroConverter"), ("key.converter.schemas.enable", "false")]),
        ("LS201", "dbz-jdbc", &[("errors.tolerance", "all")], &[("errors.tolerance", "all"), ("errors.deadletterqueue.topic.name", "dlq.x"), ("errors.deadletterqueue.context.headers.enable", "true")]),
        ("LS201", "pg", &[("errors.tolerance", "all")], &[("errors.tolerance", "none")]),
        ("LS202", "cf-jdbc", &[("errors.deadletterqueue.context.headers.enable", "")], &[]),
        ("LS202", "cf-jdbc", &[("errors.deadletterqueue.context.headers.enable", "false")], &[("errors.deadletterqueue.topic.name", ""), ("errors.tolerance", "none"), ("errors.deadletterqueue.context.headers.enable", "")]),
        ("LS203", "dbz-jdbc", &[("errors.log.include.messages", "true")], &[("errors.log.include.messages", "false")]),
        ("LS301", "cf-jdbc", &[("auto.create", "true"), ("auto.evolve", "true")], &[("auto.evolve", "false")]),
        ("LS301", "dbz-jdbc", &[("schema.evolution", "basic")], &[("schema.evolution", "none")]),
        ("LS302", "dbz-jdbc", &[("primary.key.mode", "record_value")], &[("delete.enabled", "false"), ("primary.key.mode", "record_value")]),
        ("LS302", "cf-jdbc", &[("pk.mode", "")], &[("pk.mode", "record_key")]),
        ("LS303", "dbz-jdbc", &[("insert.mode", "insert")], &[("insert.mode", "upsert")]),
        ("LS303", "cf-jdbc", &[("insert.mode", "")], &[("insert.mode", "update")]),
        ("LS401", "pg", &[("database.password", "hunter2")], &[("database.password", "${env:PG_PASSWORD}")]),
        ("LS401", "dbz-jdbc", &[("connection.url", "jdbc:postgresql://dr-db/shop?user=a&password=hunter2")], &[("connection.url", "jdbc:postgresql://dr-db/shop?user=a")]),
        ("LS401", "pg", &[("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";")], &[("sasl.jaas.config", "${file:/run/secrets/kafka.properties:jaas}")]),
        ("LS501", "pg", &[("tasks.max", "4")], &[("tasks.max", "1")]),
        ("LS501", "sqlserver", &[("tasks.max", "3")], &[("tasks.max", "2")]),
        ("LS601", "pg", &[("slot.name", "")], &[("slot.name", "other_slot")]),
        ("LS602", "pg", &[("publication.name", "")], &[("publication.name", "p")]),
        ("LS603", "pg", &[("publication.autocreate.mode", "all_tables")], &[("publication.autocreate.mode", "disabled")]),
        ("LS603", "pg", &[("publication.autocreate.mode", "")], &[("publication.autocreate.mode", "filtered")]),
        ("LS604", "pg", &[("heartbeat.interval.ms", "")], &[("heartbeat.interval.ms", "5000")]),
        ("LS604", "pg", &[("heartbeat.interval.ms", "0")], &[("heartbeat.interval.ms", "1")]),
        ("LS605", "pg", &[("snapshot.mode", "always")], &[("snapshot.mode", "initial")]),
        ("LS605", "mysql", &[("snapshot.mode", "no_data")], &[("snapshot.mode", "")]),
        ("LS605", "pg", &[("snapshot.mode", "initial_only")], &[("snapshot.mode", "configuration_based")]),
        ("LS606", "pg", &[("table.include.list", "")], &[("table.include.list", "public.a,public.b")]),
        ("LS606", "mysql", &[("table.include.list", "")], &[]),
        ("LS607", "pg", &[("decimal.handling.mode", "double")], &[("decimal.handling.mode", "string")]),
        ("LS608", "pg", &[("tombstones.on.delete", "false")], &[("tombstones.on.delete", "true")]),
        ("LS609", "pg", &[("skipped.operations", "t,d")], &[("skipped.operations", "t")]),
        ("LS701", "mysql", &[("schema.history.internal.kafka.topic", "")], &[("schema.history.internal", "io.debezium.storage.file.history.FileSchemaHistory"), ("schema.history.internal.kafka.topic", "")]),
        ("LS701", "mysql", &[("schema.history.internal.kafka.bootstrap.servers", "")], &[]),
        ("LS703", "mysql", &[("schema.history.internal.skip.unparseable.ddl", "true")], &[("schema.history.internal.skip.unparseable.ddl", "false")]),
        ("LS703", "mysql", &[("schema.history.internal.store.only.captured.tables.ddl", "true")], &[]),
        ("LS704", "mysql", &[("snapshot.locking.mode", "extended")], &[("snapshot.locking.mode", "minimal")]),
        ("LS704", "mysql", &[("snapshot.locking.mode", "none")], &[("snapshot.locking.mode", "none"), ("snapshot.mode", "no_data")]),
        ("LS801", "pg", &[("topic.prefix", "Shop_Prod")], &[("topic.prefix", "shop_prod")]),
        ("LS801", "cf-jdbc", &[("errors.deadletterqueue.topic.name", "DLQ")], &[("errors.deadletterqueue.topic.name", "dlq.orders")]),
        ("LS801", "dbz-jdbc", &[("topics", "shop.public.orders,Shop.Public.Customers")], &[("topics", "shop.public.orders,shop.public.customers")]),
    ];
    for (rule, base, fires, quiet) in cases {
        let m = Manifest::in_memory("c", config(base, fires), "mem.yaml");
        let report = run(&[m], "default");
        let got = rules_of(&report);
        assert_eq!(
            got.iter().filter(|r| *r == rule).count(),
            1,
            "{rule} on {base} with {fires:?}: {got:?}"
        );
        let m = Manifest::in_memory("c", config(base, quiet), "mem.yaml");
        let report = run(&[m], "default");
        assert!(
            !rules_of(&report).contains(rule),
            "{rule} on {base} with {quiet:?} should not fire: {:#?}",
            report.findings
        );
    }
}

#[test]
fn sink_tasks_against_known_partitions() {
    let sink = Manifest::in_memory("sink", config("dbz-jdbc", &[("tasks.max", "4")]), "s.yaml");
    // Unknown partitions: nothing to say.
    assert!(!rules_of(&run(std::slice::from_ref(&sink), "default")).contains(&"LS502"));
    // Partitions from the command line.
    let mut ctx = Context::default();
    ctx.topic_partitions.insert("shop.public.orders".into(), 2);
    let report = lint(
        std::slice::from_ref(&sink),
        &Profile::named("default").expect("p"),
        &ctx,
    );
    assert_eq!(rules_of(&report), ["LS502"]);
    ctx.topic_partitions.insert("shop.public.orders".into(), 4);
    let report = lint(
        std::slice::from_ref(&sink),
        &Profile::named("default").expect("p"),
        &ctx,
    );
    assert!(report.findings.is_empty());
    // Partitions derived from the source connector in the same set.
    let source = Manifest::in_memory(
        "src",
        config("pg", &[("topic.creation.default.partitions", "3")]),
        "p.yaml",
    );
    let report = run(&[source.clone(), sink], "default");
    assert_eq!(rules_of(&report), ["LS502"]);
    let fitting = Manifest::in_memory("sink", config("dbz-jdbc", &[("tasks.max", "3")]), "s.yaml");
    assert!(run(&[source, fitting], "default").findings.is_empty());
}

#[test]
fn set_rules_see_shared_slots_and_history_topics() {
    let a = Manifest::in_memory("a", config("pg", &[]), "a.yaml");
    let b = Manifest::in_memory("b", config("pg", &[("topic.prefix", "shop2")]), "b.yaml");
    let report = run(&[a.clone(), b], "default");
    let shared: Vec<(&str, &str)> = report
        .active()
        .map(|f| (f.rule, f.connector.as_str()))
        .collect();
    assert_eq!(shared, [("LS610", "a"), ("LS610", "b")]);
    let c = Manifest::in_memory("c", config("pg", &[("slot.name", "c_slot")]), "c.yaml");
    assert!(run(&[a, c], "default").findings.is_empty());

    let m1 = Manifest::in_memory("m1", config("mysql", &[]), "m1.yaml");
    let m2 = Manifest::in_memory(
        "m2",
        config("mysql", &[("topic.prefix", "other")]),
        "m2.yaml",
    );
    let report = run(&[m1.clone(), m2], "default");
    assert_eq!(rules_of(&report), ["LS702", "LS702"]);
    let m3 = Manifest::in_memory(
        "m3",
        config(
            "mysql",
            &[("schema.history.internal.kafka.topic", "schema-history.m3")],
        ),
        "m3.yaml",
    );
    assert!(run(&[m1, m3], "default").findings.is_empty());
}

#[test]
fn suppressions_need_a_justification() {
    let mut m = Manifest::in_memory(
        "c",
        config("pg", &[("heartbeat.interval.ms", "")]),
        "mem.yaml",
    );
    m.suppressions.push(Suppression {
        rule: "LS604".into(),
        justification: Some("the application writes heartbeats".into()),
        location: None,
    });
    let report = run(std::slice::from_ref(&m), "default");
    assert_eq!(report.active().count(), 0, "{:#?}", report.findings);
    assert_eq!(report.counts.suppressed, 1);
    assert_eq!(
        report.findings[0].suppressed.as_deref(),
        Some("the application writes heartbeats")
    );

    // By name works too; without a justification it suppresses nothing and is an error.
    m.suppressions = vec![
        Suppression {
            rule: "pg-no-heartbeat".into(),
            justification: None,
            location: None,
        },
        Suppression {
            rule: "LS999".into(),
            justification: Some("x".into()),
            location: None,
        },
    ];
    let report = run(&[m], "default");
    let mut got = rules_of(&report);
    got.sort_unstable();
    assert_eq!(got, ["LS001", "LS002", "LS604"]);
    assert_eq!(report.max_severity(), Some(Severity::Error));
}

#[test]
fn profiles_change_severities() {
    let m = Manifest::in_memory(
        "c",
        config("cf-jdbc", &[("auto.create", "true")]),
        "mem.yaml",
    );
    let default = run(std::slice::from_ref(&m), "default");
    assert_eq!(default.max_severity(), Some(Severity::Info));
    let regulated = run(&[m], "regulated");
    assert_eq!(regulated.max_severity(), Some(Severity::Error));
    let mut off = Profile::named("default").expect("p");
    off.set("LS301", None).expect("rule");
    let m = Manifest::in_memory(
        "c",
        config("cf-jdbc", &[("auto.create", "true")]),
        "mem.yaml",
    );
    assert!(lint(&[m], &off, &Context::default()).findings.is_empty());
}

#[test]
fn catalog_ids_are_unique_and_documented() {
    let mut ids: Vec<&str> = catalog().map(|r| r.id).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate rule ids");
    for r in catalog() {
        assert!(r.id.starts_with("LS") && r.id.len() == 5, "{}", r.id);
        assert!(
            !r.summary.is_empty() && !r.rationale.is_empty() && !r.fix.is_empty(),
            "{}",
            r.id
        );
        assert_eq!(find_rule(r.name).map(|x| x.id), Some(r.id));
    }
}

#[test]
fn outputs_never_show_secrets_and_sarif_is_well_formed() {
    let m = Manifest::in_memory(
        "c",
        config(
            "pg",
            &[
                ("database.password", "hunter2"),
                ("heartbeat.interval.ms", ""),
            ],
        ),
        "mem.yaml",
    );
    let report = run(&[m], "default");
    let text = render::text(&report);
    let json = render::json(&report);
    let sarif = render::sarif(&report);
    for out in [&text, &json, &sarif] {
        assert!(!out.contains("hunter2"), "{out}");
    }
    assert!(
        text.contains("error[LS401]") && text.contains("--> mem.yaml:1:1"),
        "{text}"
    );
    let doc: serde_json::Value = serde_json::from_str(&sarif).expect("sarif is json");
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    assert!(run["tool"]["driver"]["rules"]
        .as_array()
        .is_some_and(|r| r.len() >= 25));
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert!(results
        .iter()
        .any(|r| r["ruleId"] == "LS401" && r["level"] == "error"));
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "mem.yaml"
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(parsed["counts"]["error"], 1);
}
