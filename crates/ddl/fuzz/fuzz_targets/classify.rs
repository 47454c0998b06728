//! Any input: the classifier (both engines) and the planner return a result, never panic.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lockstep_ddl::{
    classify, Catalog, Column, Engine, IndexInfo, QualifiedName, SqlType, TableSchema,
};
use lockstep_ddl_plan::{
    plan_script, PipelineFacts, PlanSettings, SinkKind, TargetEngine, TargetFacts,
};

fn catalog(engine: Engine) -> Catalog {
    let col = |name: &str, data_type: SqlType, nullable: bool| Column {
        name: name.into(),
        data_type,
        nullable,
        default: None,
    };
    let mut orders = TableSchema::new(
        QualifiedName::new("public", "orders"),
        vec![
            col("id", SqlType::int(8), false),
            col("note", SqlType::Varchar { length: Some(20) }, true),
            col("qty", SqlType::int(4), false),
            col(
                "amount",
                SqlType::Decimal {
                    precision: Some(10),
                    scale: Some(2),
                },
                true,
            ),
        ],
        &["id"],
    );
    orders.primary_key_name = Some("orders_pkey".into());
    orders.indexes = vec![IndexInfo {
        name: "orders_note_idx".into(),
        columns: vec!["note".into()],
        unique: true,
    }];
    let items = TableSchema::new(
        QualifiedName::new("public", "items"),
        vec![
            col("id", SqlType::int(4), false),
            col("label", SqlType::Text { max_bytes: None }, true),
        ],
        &["id"],
    );
    let mut c = Catalog::new(engine, &["public"])
        .with_table(orders)
        .with_table(items);
    c.outside = vec![QualifiedName::new("public", "accounts")];
    c.views = vec![QualifiedName::new("public", "v")];
    c
}

fn facts(engine: TargetEngine) -> PipelineFacts {
    PipelineFacts {
        source_connectors: vec!["cdc".into()],
        topic_prefix: "db".into(),
        topics: BTreeMap::new(),
        publication: None,
        signal_table: Some(QualifiedName::new("public", "signal")),
        emits_truncate: false,
        sink: SinkKind::Lockstep,
        target: TargetFacts {
            engine,
            schema: "public".into(),
            tables: BTreeMap::new(),
        },
        tables: vec![
            QualifiedName::new("public", "orders"),
            QualifiedName::new("public", "items"),
        ],
        settings: PlanSettings::default(),
    }
}

struct Fixture {
    catalogs: [Catalog; 2],
    facts: [PipelineFacts; 2],
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let f = FIXTURE.get_or_init(|| Fixture {
        catalogs: [catalog(Engine::Postgres), catalog(Engine::Mysql)],
        facts: [facts(TargetEngine::Postgres), facts(TargetEngine::Mariadb)],
    });
    let script = String::from_utf8_lossy(data);
    for catalog in &f.catalogs {
        if let Ok(c) = classify(&script, catalog) {
            for facts in &f.facts {
                let _ = plan_script(&c, facts);
            }
        }
    }
});
