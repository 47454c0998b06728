//! Planning per class: the step sequence of each strategy, the target SQL per engine, the
//! compensations, and the refusals that depend on the pipeline.

use std::collections::BTreeMap;

use lockstep_ddl::*;
use lockstep_ddl_plan::*;

fn col(name: &str, ty: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        data_type: parse_pg_type(ty).unwrap(),
        nullable,
        default: None,
    }
}

fn catalog() -> Catalog {
    let mut orders = TableSchema::new(
        QualifiedName::new("public", "orders"),
        vec![
            col("id", "bigint", false),
            col("customer_id", "integer", false),
            col("note", "character varying(20)", true),
            Column {
                default: Some(DefaultValue {
                    sql: "'new'::text".into(),
                    constant: Some(Literal::String("new".into())),
                    identity: false,
                }),
                ..col("status", "text", false)
            },
            col("amount", "numeric(10,2)", true),
            col("span", "interval", true),
        ],
        &["id"],
    );
    orders.primary_key_name = Some("orders_pkey".into());
    orders.indexes = vec![IndexInfo {
        name: "orders_customer_idx".into(),
        columns: vec!["customer_id".into()],
        unique: false,
    }];
    orders.constraints = vec![ConstraintInfo {
        name: "orders_amount_check".into(),
        kind: ConstraintKind::Check,
    }];
    orders.rows = Some(100);
    let mut customers = TableSchema::new(
        QualifiedName::new("public", "customers"),
        vec![col("id", "integer", false), col("name", "text", false)],
        &["id"],
    );
    customers.rows = Some(0);
    let signal = TableSchema::new(
        QualifiedName::new("public", "debezium_signal"),
        vec![
            col("id", "text", false),
            col("type", "text", false),
            col("data", "text", true),
        ],
        &["id"],
    );
    let mut c = Catalog::new(Engine::Postgres, &["public"])
        .with_table(orders)
        .with_table(customers)
        .with_table(signal);
    c.views = vec![QualifiedName::new("public", "order_totals")];
    c
}

fn facts(engine: TargetEngine) -> PipelineFacts {
    PipelineFacts {
        source_connectors: vec!["orders-cdc".into()],
        topic_prefix: "dbserver1".into(),
        topics: BTreeMap::new(),
        publication: Some(PublicationFacts {
            name: "dbz_publication".into(),
            all_tables: false,
        }),
        signal_table: Some(QualifiedName::new("public", "debezium_signal")),
        emits_truncate: false,
        sink: SinkKind::Lockstep,
        target: TargetFacts {
            engine,
            schema: match engine {
                TargetEngine::Postgres => "public".into(),
                TargetEngine::Mariadb => "replica".into(),
            },
            tables: BTreeMap::new(),
        },
        tables: vec![
            QualifiedName::new("public", "orders"),
            QualifiedName::new("public", "customers"),
            QualifiedName::new("public", "debezium_signal"),
        ],
        settings: PlanSettings::default(),
    }
}

fn plan_with(sql: &str, f: &PipelineFacts) -> Result<Plan, PlanError> {
    let c = classify(sql, &catalog()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    plan_statement(&c.statements[0], c.engine, f)
}

fn plan(sql: &str) -> Plan {
    plan_with(sql, &facts(TargetEngine::Postgres)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn kind_of(s: &Step) -> String {
    serde_json::to_value(&s.kind).unwrap()["kind"]
        .as_str()
        .unwrap()
        .to_string()
}

fn kinds(p: &Plan) -> Vec<String> {
    p.steps.iter().map(kind_of).collect()
}

fn target_sql(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::TargetDdl { sql, .. } => Some(sql.clone()),
            _ => None,
        })
        .collect()
}

const AUDIT: &str = "audit_record";
const TARGET: &str = "target_ddl";
const SOURCE: &str = "source_ddl";
const MARK: &str = "mark_source_position";
const WAIT: &str = "wait_sink_applied";
const VERIFY: &str = "verify_target_schema";
const ROWS: &str = "verify_rows";
const SIGNAL: &str = "incremental_snapshot_signal";
const SNAPSHOT_DONE: &str = "wait_snapshot_completed";
const PAUSE: &str = "pause_connector";
const RESUME: &str = "resume_connector";
const HOLD: &str = "hold_sink_table";
const RELEASE: &str = "release_sink_table";

#[test]
fn step_sequence_per_class() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // additive and widening: target first, then source, no pause
        ("ALTER TABLE orders ADD COLUMN discount numeric(10,2)", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        ("ALTER TABLE orders ADD COLUMN channel text NOT NULL DEFAULT 'web'", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        ("ALTER TABLE orders ALTER COLUMN note TYPE varchar(50)", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        ("ALTER TABLE orders ALTER COLUMN status DROP NOT NULL", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        ("ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'pending'", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        ("ALTER TABLE orders ALTER COLUMN status DROP DEFAULT", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        ("CREATE INDEX orders_status_idx ON orders (status)", vec![AUDIT, TARGET, SOURCE, AUDIT]),
        ("DROP INDEX orders_customer_idx", vec![AUDIT, TARGET, SOURCE, AUDIT]),
        ("CREATE VIEW big AS SELECT id FROM orders", vec![AUDIT, TARGET, SOURCE, AUDIT]),
        ("DROP VIEW order_totals", vec![AUDIT, TARGET, SOURCE, AUDIT]),
        ("COMMENT ON COLUMN orders.note IS 'free text'", vec![AUDIT, TARGET, SOURCE, AUDIT]),
        ("ALTER TABLE orders ADD CONSTRAINT amount_pos CHECK (amount >= 0)", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        ("ALTER TABLE orders DROP CONSTRAINT orders_amount_check", vec![AUDIT, TARGET, SOURCE, VERIFY, AUDIT]),
        // source only
        ("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID", vec![AUDIT, SOURCE, VERIFY, AUDIT]),
        ("CREATE UNIQUE INDEX orders_note_uidx ON orders (note)", vec![AUDIT, SOURCE, AUDIT]),
        ("ALTER TABLE orders REPLICA IDENTITY FULL", vec![AUDIT, SOURCE, VERIFY, AUDIT]),
        // DROP COLUMN: make the target column nullable, source, wait, drop on target
        ("ALTER TABLE orders DROP COLUMN customer_id", vec![AUDIT, TARGET, SOURCE, MARK, WAIT, TARGET, VERIFY, AUDIT]),
        ("ALTER TABLE orders DROP COLUMN note", vec![AUDIT, SOURCE, MARK, WAIT, TARGET, VERIFY, AUDIT]),
        // expand / contract
        ("ALTER TABLE orders ALTER COLUMN note TYPE varchar(10)", vec![AUDIT, SOURCE, MARK, WAIT, TARGET, VERIFY, ROWS, AUDIT]),
        ("ALTER TABLE orders ALTER COLUMN note SET NOT NULL", vec![AUDIT, SOURCE, MARK, WAIT, TARGET, VERIFY, AUDIT]),
        ("ALTER TABLE customers ADD COLUMN email text NOT NULL", vec![AUDIT, TARGET, SOURCE, MARK, WAIT, TARGET, VERIFY, AUDIT]),
        (
            "ALTER TABLE orders ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()",
            vec![AUDIT, TARGET, SOURCE, MARK, WAIT, SIGNAL, SNAPSHOT_DONE, TARGET, TARGET, VERIFY, AUDIT],
        ),
        // boundary: pause, source + mark, hold at the mark, resume, wait, target, release
        (
            "ALTER TABLE orders RENAME COLUMN note TO remark",
            vec![AUDIT, PAUSE, SOURCE, HOLD, RESUME, WAIT, TARGET, RELEASE, VERIFY, AUDIT],
        ),
        // a conversion leaves no mark in the events: quiesce, drain, hold, both, release
        (
            "ALTER TABLE orders ALTER COLUMN note TYPE integer USING note::integer",
            vec![
                AUDIT,
                "quiesce_source_table",
                MARK,
                WAIT,
                HOLD,
                SOURCE,
                "release_source_table",
                TARGET,
                RELEASE,
                SIGNAL,
                SNAPSHOT_DONE,
                VERIFY,
                ROWS,
                AUDIT,
            ],
        ),
        // primary key: quiesce, drain, stop, both, restart, re-snapshot
        (
            "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
            vec![
                AUDIT,
                "quiesce_source_table",
                MARK,
                WAIT,
                "stop_connector",
                SOURCE,
                "release_source_table",
                TARGET,
                TARGET,
                "restart_connector",
                SIGNAL,
                SNAPSHOT_DONE,
                VERIFY,
                ROWS,
                AUDIT,
            ],
        ),
        // tables
        (
            "CREATE TABLE refunds (id bigint PRIMARY KEY, amount numeric(10,2))",
            vec![AUDIT, TARGET, "update_connector_config", "add_sink_table", SOURCE, "update_publication", SIGNAL, SNAPSHOT_DONE, VERIFY, AUDIT],
        ),
        (
            "DROP TABLE customers",
            vec![AUDIT, SOURCE, MARK, WAIT, TARGET, "remove_sink_table", "update_connector_config", VERIFY, AUDIT],
        ),
        (
            // the new name in the connector and the sink (held), the old one quiesced and
            // drained, the rename in the quiesce session
            "ALTER TABLE customers RENAME TO clients",
            vec![
                AUDIT,
                "update_connector_config",
                "add_sink_table",
                "quiesce_source_table",
                MARK,
                WAIT,
                SOURCE,
                "release_source_table",
                TARGET,
                RELEASE,
                "remove_sink_table",
                "update_connector_config",
                VERIFY,
                AUDIT,
            ],
        ),
        (
            // skipped by the connector: quiesce, drain, hold, both, release
            "TRUNCATE orders, customers",
            vec![
                AUDIT,
                "quiesce_source_table",
                "quiesce_source_table",
                MARK,
                WAIT,
                HOLD,
                HOLD,
                SOURCE,
                "release_source_table",
                "release_source_table",
                TARGET,
                RELEASE,
                RELEASE,
                VERIFY,
                VERIFY,
                AUDIT,
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (sql, want) in cases {
        let p = plan(sql);
        let got = kinds(&p);
        if got != want {
            failures.push(format!("{sql}\n   got  {got:?}\n   want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_skipped_truncate_runs_in_the_quiesce_session_with_the_table_held() {
    let p = plan("TRUNCATE orders");
    let find = |kind: &str| p.steps.iter().position(|s| kind_of(s) == kind).unwrap();
    match &p.steps[find(SOURCE)].kind {
        StepKind::SourceDdl {
            in_quiesce_session, ..
        } => assert!(in_quiesce_session, "the TRUNCATE commits with the quiesce"),
        other => panic!("{other:?}"),
    }
    match &p.steps[find(HOLD)].kind {
        StepKind::HoldSinkTable {
            quiesced, drift, ..
        } => assert!(*quiesced && !drift, "held on request, once drained"),
        other => panic!("{other:?}"),
    }
    // The commit of the session is the point of no return; the hold is undone before it.
    let commit = p
        .steps
        .iter()
        .find(|s| matches!(s.kind, StepKind::ReleaseSourceTable { commit: true, .. }))
        .unwrap();
    assert_eq!(p.point_of_no_return, commit.n);
    assert!(find(WAIT) < find(HOLD) && find(HOLD) < find(SOURCE) && find(SOURCE) < find(TARGET));
    // Writes wait while the sink drains the table: that wait has its own, short bound.
    match &p.steps[find(WAIT)].kind {
        StepKind::WaitSinkApplied { timeout_ms, .. } => {
            assert_eq!(*timeout_ms, PlanSettings::default().quiesce_timeout_ms)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.steps[find(HOLD)].compensation,
        Compensation::Undo {
            step: Box::new(StepKind::ReleaseSinkTable {
                table: QualifiedName::new("public", "orders")
            })
        }
    );
    assert_eq!(
        p.steps[find("quiesce_source_table")].compensation,
        Compensation::Undo {
            step: Box::new(StepKind::ReleaseSourceTable {
                table: QualifiedName::new("public", "orders"),
                commit: false,
            })
        }
    );
}

#[test]
fn truncate_emitted_by_the_connector_is_applied_in_order_by_the_sink() {
    let mut f = facts(TargetEngine::Postgres);
    f.emits_truncate = true;
    let p = plan_with("TRUNCATE orders", &f).unwrap();
    assert_eq!(kinds(&p), vec![AUDIT, SOURCE, MARK, WAIT, VERIFY, AUDIT]);
}

#[test]
fn compensation_and_point_of_no_return() {
    for sql in [
        "ALTER TABLE orders ADD COLUMN discount numeric(10,2)",
        "ALTER TABLE orders DROP COLUMN customer_id",
        "ALTER TABLE orders RENAME COLUMN note TO remark",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
        "CREATE TABLE refunds (id bigint PRIMARY KEY)",
        "ALTER TABLE customers RENAME TO clients",
        "TRUNCATE orders",
        "CREATE INDEX orders_status_idx ON orders (status)",
    ] {
        let p = plan(sql);
        let nr = p.point_of_no_return;
        assert!(
            nr > 1 && nr < p.steps.len(),
            "{sql}: point of no return {nr}"
        );
        for s in &p.steps {
            assert_eq!(s.n, p.steps.iter().position(|x| x == s).unwrap() + 1);
            match (&s.compensation, s.n.cmp(&nr)) {
                (Compensation::RollForward, std::cmp::Ordering::Less) => {
                    panic!(
                        "{sql}: step {} rolls forward before the point of no return",
                        s.n
                    )
                }
                (
                    Compensation::Undo { .. },
                    std::cmp::Ordering::Equal | std::cmp::Ordering::Greater,
                ) => {
                    panic!("{sql}: step {} is undone after the point of no return", s.n)
                }
                _ => {}
            }
        }
    }
    let p = plan("ALTER TABLE orders ADD COLUMN discount numeric(10,2)");
    assert_eq!(p.point_of_no_return, 3);
    assert_eq!(
        p.steps[1].compensation,
        Compensation::Undo {
            step: Box::new(StepKind::TargetDdl {
                engine: TargetEngine::Postgres,
                sql: "ALTER TABLE \"public\".\"orders\" DROP COLUMN IF EXISTS \"discount\"".into()
            })
        }
    );
    assert_eq!(p.steps[2].compensation, Compensation::RollForward);
    assert!(!p.steps[2].idempotent);
    // Pausing is undone by resuming; the quiesce lock by rolling back.
    let p = plan("ALTER TABLE orders RENAME COLUMN note TO remark");
    assert_eq!(
        p.steps[1].compensation,
        Compensation::Undo {
            step: Box::new(StepKind::ResumeConnector {
                connector: "orders-cdc".into()
            })
        }
    );
    assert!(matches!(
        &p.steps[2].kind,
        StepKind::SourceDdl { mark: Some(m), transactional: true, .. } if m == "ddl"
    ));
    assert!(
        matches!(&p.steps[3].kind, StepKind::HoldSinkTable { at_mark: Some(m), drift: true, .. } if m == "ddl"),
        "a rename's next events lack the target's column: the block policy holds the table there"
    );
    // A TRUNCATE the connector skips leaves nothing in the events to hold the table at.
    let truncate = plan("TRUNCATE orders");
    assert!(truncate
        .steps
        .iter()
        .any(|s| matches!(&s.kind, StepKind::HoldSinkTable { drift: false, .. })));
    // The rename on the target runs once: guarded by the new column's existence.
    let rename = p
        .steps
        .iter()
        .find(|s| matches!(s.kind, StepKind::TargetDdl { .. }))
        .unwrap();
    assert!(!rename.idempotent);
    assert_eq!(
        rename.skip_if,
        vec![Check::TargetColumnExists {
            table: TargetTable {
                schema: "public".into(),
                name: "orders".into()
            },
            column: "remark".into()
        }]
    );
    let p =
        plan("ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)");
    assert_eq!(
        p.steps[1].compensation,
        Compensation::Undo {
            step: Box::new(StepKind::ReleaseSourceTable {
                table: QualifiedName::new("public", "orders"),
                commit: false
            })
        }
    );
    assert!(matches!(
        p.steps[5].kind,
        StepKind::SourceDdl {
            in_quiesce_session: true,
            ..
        }
    ));
    assert_eq!(p.point_of_no_return, 7, "the quiesce session's commit");
}

#[test]
fn postgres_target_sql() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "ALTER TABLE orders ADD COLUMN channel text NOT NULL DEFAULT 'we''b'",
            vec![r#"ALTER TABLE "public"."orders" ADD COLUMN IF NOT EXISTS "channel" text NOT NULL DEFAULT 'we''b'"#],
        ),
        (
            "ALTER TABLE orders ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()",
            vec![
                r#"ALTER TABLE "public"."orders" ADD COLUMN IF NOT EXISTS "token" uuid NULL"#,
                r#"ALTER TABLE "public"."orders" ALTER COLUMN "token" SET NOT NULL"#,
                r#"ALTER TABLE "public"."orders" ALTER COLUMN "token" SET DEFAULT gen_random_uuid()"#,
            ],
        ),
        (
            "ALTER TABLE orders DROP COLUMN customer_id",
            vec![
                r#"ALTER TABLE "public"."orders" ALTER COLUMN "customer_id" DROP NOT NULL"#,
                r#"ALTER TABLE "public"."orders" DROP COLUMN IF EXISTS "customer_id""#,
            ],
        ),
        ("ALTER TABLE orders RENAME COLUMN note TO \"Remark\"", vec![r#"ALTER TABLE "public"."orders" RENAME COLUMN "note" TO "Remark""#]),
        (
            "ALTER TABLE orders ALTER COLUMN note TYPE varchar(50)",
            vec![r#"ALTER TABLE "public"."orders" ALTER COLUMN "note" TYPE character varying(50) USING "note"::character varying(50)"#],
        ),
        (
            "ALTER TABLE orders ALTER COLUMN amount TYPE numeric(12,2) USING amount * 100",
            vec![r#"ALTER TABLE "public"."orders" ALTER COLUMN "amount" TYPE numeric(12,2) USING amount * 100"#],
        ),
        (
            "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
            vec![
                r#"ALTER TABLE "public"."orders" DROP CONSTRAINT IF EXISTS "orders_pkey""#,
                r#"ALTER TABLE "public"."orders" ADD CONSTRAINT "orders_pkey" PRIMARY KEY ("id", "customer_id")"#,
            ],
        ),
        (
            "CREATE INDEX CONCURRENTLY orders_x ON orders (status DESC, lower(note) text_pattern_ops) INCLUDE (amount) WHERE amount > 0",
            vec![r#"CREATE INDEX CONCURRENTLY IF NOT EXISTS "orders_x" ON "public"."orders" USING btree ("status" DESC, (lower(note))) INCLUDE ("amount") WHERE amount > 0"#],
        ),
        ("DROP INDEX CONCURRENTLY orders_customer_idx", vec![r#"DROP INDEX CONCURRENTLY IF EXISTS "public"."orders_customer_idx""#]),
        (
            "CREATE VIEW big (i) AS SELECT id FROM orders WHERE amount > 10",
            vec![r#"CREATE VIEW "public"."big" ("i") AS SELECT id FROM orders WHERE amount > 10"#],
        ),
        ("ALTER TABLE orders ADD CONSTRAINT amount_pos CHECK (amount >= 0)", vec![r#"ALTER TABLE "public"."orders" ADD CONSTRAINT "amount_pos" CHECK (amount >= 0)"#]),
        ("COMMENT ON TABLE orders IS 'o''k'", vec![r#"COMMENT ON TABLE "public"."orders" IS 'o''k'"#]),
        ("COMMENT ON COLUMN orders.note IS NULL", vec![r#"COMMENT ON COLUMN "public"."orders"."note" IS NULL"#]),
        (
            "CREATE TABLE refunds (id bigint PRIMARY KEY, amount numeric(10,2) NOT NULL DEFAULT 0, at timestamptz DEFAULT now(), tags text[])",
            vec![r#"CREATE TABLE IF NOT EXISTS "public"."refunds" ("id" bigint NOT NULL, "amount" numeric(10,2) NOT NULL DEFAULT 0, "at" timestamp with time zone NULL DEFAULT now(), "tags" text[] NULL, PRIMARY KEY ("id"))"#],
        ),
        ("DROP TABLE customers", vec![r#"DROP TABLE IF EXISTS "public"."customers""#]),
        ("ALTER TABLE customers RENAME TO clients", vec![r#"ALTER TABLE "public"."customers" RENAME TO "clients""#]),
        ("TRUNCATE orders, customers", vec![r#"TRUNCATE TABLE "public"."orders", "public"."customers""#]),
    ];
    let mut failures = Vec::new();
    for (sql, want) in cases {
        let got = target_sql(&plan(sql));
        if got != want {
            failures.push(format!("{sql}\n   got  {got:#?}\n   want {want:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mariadb_target_sql_translates_types() {
    let f = facts(TargetEngine::Mariadb);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "ALTER TABLE orders ADD COLUMN channel text NOT NULL DEFAULT 'a\\b''c'",
            vec![r"ALTER TABLE `replica`.`orders` ADD COLUMN IF NOT EXISTS `channel` LONGTEXT NOT NULL DEFAULT 'a\\b''c'"],
        ),
        (
            "ALTER TABLE orders ALTER COLUMN note TYPE varchar(50)",
            vec!["ALTER TABLE `replica`.`orders` MODIFY COLUMN `note` VARCHAR(50) NULL"],
        ),
        (
            "ALTER TABLE orders ALTER COLUMN status DROP NOT NULL",
            vec!["ALTER TABLE `replica`.`orders` MODIFY COLUMN `status` LONGTEXT NULL DEFAULT 'new'"],
        ),
        (
            "ALTER TABLE orders DROP COLUMN customer_id",
            vec![
                "ALTER TABLE `replica`.`orders` MODIFY COLUMN `customer_id` INT NULL",
                "ALTER TABLE `replica`.`orders` DROP COLUMN IF EXISTS `customer_id`",
            ],
        ),
        ("ALTER TABLE orders RENAME COLUMN note TO remark", vec!["ALTER TABLE `replica`.`orders` RENAME COLUMN `note` TO `remark`"]),
        (
            "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
            vec![
                "ALTER TABLE `replica`.`orders` DROP PRIMARY KEY",
                "ALTER TABLE `replica`.`orders` ADD PRIMARY KEY (`id`, `customer_id`)",
            ],
        ),
        ("CREATE INDEX orders_s ON orders (status, note DESC)", vec!["CREATE INDEX IF NOT EXISTS `orders_s` ON `replica`.`orders` (`status`, `note` DESC)"]),
        ("CREATE INDEX orders_l ON orders (lower(note))", vec![]),
        ("DROP INDEX orders_customer_idx", vec!["DROP INDEX IF EXISTS `orders_customer_idx` ON `replica`.`orders`"]),
        ("CREATE VIEW big AS SELECT id FROM orders", vec![]),
        ("COMMENT ON TABLE orders IS 'x'", vec!["ALTER TABLE `replica`.`orders` COMMENT = 'x'"]),
        ("ALTER TABLE customers RENAME TO clients", vec!["RENAME TABLE `replica`.`customers` TO `replica`.`clients`"]),
        ("TRUNCATE orders, customers", vec!["TRUNCATE TABLE `replica`.`orders`", "TRUNCATE TABLE `replica`.`customers`"]),
        (
            "CREATE TABLE refunds (id bigint PRIMARY KEY, n smallint, amount numeric(10,2) DEFAULT 0, at timestamptz, t time(3), d date, u uuid, j jsonb, b boolean DEFAULT true, c char(3), v varchar(40000), x bytea, r real, f float8)",
            vec!["CREATE TABLE IF NOT EXISTS `replica`.`refunds` (`id` BIGINT NOT NULL, `n` SMALLINT NULL, `amount` DECIMAL(10,2) NULL DEFAULT 0, `at` DATETIME(6) NULL, `t` TIME(3) NULL, `d` DATE NULL, `u` CHAR(36) NULL, `j` JSON NULL, `b` BOOLEAN NULL DEFAULT TRUE, `c` CHAR(3) NULL, `v` MEDIUMTEXT NULL, `x` LONGBLOB NULL, `r` FLOAT NULL, `f` DOUBLE NULL, PRIMARY KEY (`id`))"],
        ),
    ];
    let mut failures = Vec::new();
    for (sql, want) in cases {
        let got = target_sql(&plan_with(sql, &f).unwrap_or_else(|e| panic!("{sql}: {e}")));
        if got != want {
            failures.push(format!("{sql}\n   got  {got:#?}\n   want {want:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // What MariaDB cannot express is said in the plan's notes.
    let p = plan_with("CREATE INDEX orders_l ON orders (lower(note))", &f).unwrap();
    assert_eq!(kinds(&p), vec![AUDIT, SOURCE, AUDIT]);
    assert!(p.notes[0].contains("cannot express"), "{:?}", p.notes);
}

#[test]
fn untranslatable_types_are_refused() {
    let f = facts(TargetEngine::Mariadb);
    for sql in [
        "ALTER TABLE orders ADD COLUMN x numeric",
        "ALTER TABLE orders ADD COLUMN x interval",
        "ALTER TABLE orders ADD COLUMN x text[]",
        "ALTER TABLE orders ADD COLUMN x char(300)",
    ] {
        let e = plan_with(sql, &f).unwrap_err();
        assert_eq!(e.kind, PlanErrorKind::CannotTranslate, "{sql}: {e}");
    }
    let e = plan_with(
        "ALTER TABLE orders ADD COLUMN x public.mood",
        &facts(TargetEngine::Postgres),
    )
    .unwrap_err();
    assert_eq!(e.kind, PlanErrorKind::CannotTranslate);
    assert!(e.message.contains("by hand"), "{e}");
}

#[test]
fn target_table_names_follow_the_pipeline() {
    let mut f = facts(TargetEngine::Postgres);
    f.target.schema = "replica".into();
    f.target
        .tables
        .insert("public.orders".into(), "orders_copy".into());
    let p = plan_with("ALTER TABLE orders ADD COLUMN x int", &f).unwrap();
    assert_eq!(
        target_sql(&p),
        vec![r#"ALTER TABLE "replica"."orders_copy" ADD COLUMN IF NOT EXISTS "x" integer NULL"#]
    );
    // A view over tables that change schema or name on the target is not mirrored.
    let p = plan_with("CREATE VIEW big AS SELECT id FROM orders", &f).unwrap();
    assert!(target_sql(&p).is_empty());
    assert!(p.notes[0].contains("source only"));
    // Verification looks at the target's table.
    let verify = p
        .steps
        .iter()
        .find(|s| matches!(s.kind, StepKind::VerifyTargetSchema { .. }));
    assert!(verify.is_none(), "views are not structural");
    let p = plan_with("ALTER TABLE orders ADD COLUMN x int", &f).unwrap();
    match &p
        .steps
        .iter()
        .find(|s| matches!(s.kind, StepKind::VerifyTargetSchema { .. }))
        .unwrap()
        .kind
    {
        StepKind::VerifyTargetSchema {
            table,
            expect:
                Expectation::Columns {
                    columns,
                    primary_key,
                },
        } => {
            assert_eq!(
                table,
                &TargetTable {
                    schema: "replica".into(),
                    name: "orders_copy".into()
                }
            );
            assert_eq!(primary_key, &vec!["id".to_string()]);
            let x = columns.iter().find(|c| c.name == "x").unwrap();
            assert_eq!(x.data_type.as_deref(), Some("integer"));
            assert!(x.nullable);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sink_and_pipeline_facts_refuse_what_they_cannot_support() {
    let mut connect = facts(TargetEngine::Postgres);
    connect.sink = SinkKind::Connect {
        connector: "jdbc-sink".into(),
    };
    for sql in [
        "ALTER TABLE orders RENAME COLUMN note TO remark",
        "ALTER TABLE orders ALTER COLUMN note TYPE integer USING note::integer",
        "ALTER TABLE customers RENAME TO clients",
        "TRUNCATE orders",
    ] {
        let e = plan_with(sql, &connect).unwrap_err();
        assert_eq!(e.kind, PlanErrorKind::NeedsLockstepSink, "{sql}");
        assert!(e.message.contains("jdbc-sink"), "{e}");
    }
    // What needs no hold plans with a Connect sink too.
    for sql in [
        "ALTER TABLE orders ADD COLUMN x int",
        "ALTER TABLE orders DROP COLUMN note",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
    ] {
        plan_with(sql, &connect).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let p = plan_with("CREATE TABLE refunds (id bigint PRIMARY KEY)", &connect).unwrap();
    assert!(!kinds(&p).contains(&"add_sink_table".to_string()));
    assert!(p.notes.iter().any(|n| n.contains("jdbc-sink")));

    let mut no_signal = facts(TargetEngine::Postgres);
    no_signal.signal_table = None;
    for sql in [
        "CREATE TABLE refunds (id bigint PRIMARY KEY)",
        "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid()",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
    ] {
        let e = plan_with(sql, &no_signal).unwrap_err();
        assert_eq!(e.kind, PlanErrorKind::NeedsSignalTable, "{sql}");
    }

    let mut narrower = facts(TargetEngine::Postgres);
    narrower.tables.retain(|t| t.name != "orders");
    let e = plan_with("ALTER TABLE orders ADD COLUMN x int", &narrower).unwrap_err();
    assert_eq!(e.kind, PlanErrorKind::OutsidePipeline);

    let e = plan_with(
        "ALTER TABLE debezium_signal ADD COLUMN x int",
        &facts(TargetEngine::Postgres),
    )
    .unwrap_err();
    assert_eq!(e.kind, PlanErrorKind::SignalTable);

    let mut none = facts(TargetEngine::Postgres);
    none.source_connectors.clear();
    assert_eq!(
        plan_with("ALTER TABLE orders ADD COLUMN x int", &none)
            .unwrap_err()
            .kind,
        PlanErrorKind::NoConnector
    );

    let mut all_tables = facts(TargetEngine::Postgres);
    all_tables.publication = Some(PublicationFacts {
        name: "p".into(),
        all_tables: true,
    });
    let p = plan_with("CREATE TABLE refunds (id bigint PRIMARY KEY)", &all_tables).unwrap();
    assert!(!kinds(&p).contains(&"update_publication".to_string()));
}

#[test]
fn pipeline_steps_carry_connectors_topics_and_signals() {
    let p = plan("CREATE TABLE refunds (id bigint PRIMARY KEY)");
    let find = |k: &str| {
        p.steps
            .iter()
            .find(|s| serde_json::to_value(&s.kind).unwrap()["kind"] == k)
            .unwrap()
            .kind
            .clone()
    };
    assert_eq!(
        find("update_connector_config"),
        StepKind::UpdateConnectorConfig {
            connector: "orders-cdc".into(),
            key: "table.include.list".into(),
            add: vec!["public.refunds".into()],
            remove: vec![],
        }
    );
    assert_eq!(
        find("add_sink_table"),
        StepKind::AddSinkTable {
            source_table: QualifiedName::new("public", "refunds"),
            topic: "dbserver1.public.refunds".into(),
            target_table: TargetTable {
                schema: "public".into(),
                name: "refunds".into()
            },
            held: false,
        }
    );
    match find("incremental_snapshot_signal") {
        StepKind::IncrementalSnapshotSignal {
            signal_table,
            data,
            skip_if_empty,
            ..
        } => {
            assert_eq!(
                signal_table,
                QualifiedName::new("public", "debezium_signal")
            );
            assert!(skip_if_empty);
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"data-collections": ["public.refunds"], "type": "incremental"})
            );
        }
        other => panic!("{other:?}"),
    }
    let p = plan("ALTER TABLE customers RENAME TO clients");
    match &p.steps[2].kind {
        StepKind::AddSinkTable {
            topic,
            held,
            target_table,
            ..
        } => {
            assert_eq!(topic, "dbserver1.public.clients");
            assert!(held);
            assert_eq!(target_table.name, "clients");
        }
        other => panic!("{other:?}"),
    }
    // CONCURRENTLY cannot run in a transaction block.
    let p = plan("CREATE INDEX CONCURRENTLY orders_s ON orders (status)");
    assert!(matches!(
        p.steps[2].kind,
        StepKind::SourceDdl {
            transactional: false,
            ..
        }
    ));
    assert_eq!(p.concurrency, Concurrency::NonStructural);
}

#[test]
fn scripts_plan_all_or_nothing() {
    let f = facts(TargetEngine::Postgres);
    let c = classify(
        "CREATE TABLE refunds (id bigint PRIMARY KEY); ALTER TABLE refunds ADD COLUMN note text; ALTER TABLE customers RENAME TO clients; ALTER TABLE clients ADD COLUMN x int",
        &catalog(),
    )
    .unwrap();
    let plans = plan_script(&c, &f).unwrap();
    assert_eq!(plans.len(), 4);
    assert_eq!(
        plans[1].summary,
        "ADD COLUMN on public.refunds (target-first, L2)"
    );
    assert_eq!(plans[3].statement, 3);

    let mut connect = f.clone();
    connect.sink = SinkKind::Connect {
        connector: "jdbc".into(),
    };
    let c = classify(
        "ALTER TABLE orders ADD COLUMN x int; ALTER TABLE orders RENAME COLUMN note TO remark",
        &catalog(),
    )
    .unwrap();
    let e = plan_script(&c, &connect).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert_eq!(e.errors[0].statement, 1);
    assert!(e
        .to_string()
        .starts_with("DDL cannot be planned, nothing applied:\n  - statement 2:"));
}

#[test]
fn plans_serialise_to_json_and_yaml() {
    for sql in [
        "ALTER TABLE orders RENAME COLUMN note TO remark",
        "CREATE TABLE refunds (id bigint PRIMARY KEY, at timestamptz DEFAULT now())",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
    ] {
        let p = plan(sql);
        let json = serde_json::to_string_pretty(&p).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p, "{sql}");
        let yaml = serde_yaml_ng::to_string(&p).unwrap();
        let back: Plan = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(back, p, "{sql}");
        assert!(json.contains("\"kind\": \"source_ddl\""), "{json}");
    }
    let facts = facts(TargetEngine::Mariadb);
    let yaml = serde_yaml_ng::to_string(&facts).unwrap();
    let back: PipelineFacts = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(back, facts);
}
