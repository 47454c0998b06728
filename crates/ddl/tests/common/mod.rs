#![allow(dead_code)]

use lockstep_ddl::*;

pub fn col(name: &str, ty: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        data_type: parse_pg_type(ty).unwrap_or_else(|e| panic!("type {ty}: {e}")),
        nullable,
        default: None,
    }
}

pub fn with_default(mut c: Column, sql: &str, constant: Option<Literal>) -> Column {
    c.default = Some(DefaultValue {
        sql: sql.into(),
        constant,
        identity: false,
    });
    c
}

/// The PostgreSQL source used by the tests:
/// - public.orders (rows), public.customers (empty), public.events (replica identity index),
///   public.shared, app.items: the pipeline;
/// - public.accounts, app.shared: outside the pipeline; public.order_totals: a view.
///
/// Search path: public, app.
pub fn pg_catalog() -> Catalog {
    let mut orders = TableSchema::new(
        QualifiedName::new("public", "orders"),
        vec![
            col("id", "bigint", false),
            col("customer_id", "integer", false),
            col("note", "character varying(20)", true),
            with_default(
                col("amount", "numeric(10,2)", false),
                "0",
                Some(Literal::Number("0".into())),
            ),
            with_default(
                col("status", "text", false),
                "'new'::text",
                Some(Literal::String("new".into())),
            ),
            with_default(
                col("created_at", "timestamp with time zone", false),
                "now()",
                None,
            ),
            col("qty", "smallint", true),
        ],
        &["id"],
    );
    orders.primary_key_name = Some("orders_pkey".into());
    orders.indexes = vec![
        IndexInfo {
            name: "orders_customer_idx".into(),
            columns: vec!["customer_id".into()],
            unique: false,
        },
        IndexInfo {
            name: "orders_note_uidx".into(),
            columns: vec!["note".into()],
            unique: true,
        },
    ];
    orders.constraints = vec![
        ConstraintInfo {
            name: "orders_amount_check".into(),
            kind: ConstraintKind::Check,
        },
        ConstraintInfo {
            name: "orders_customer_fk".into(),
            kind: ConstraintKind::ForeignKey,
        },
    ];
    orders.rows = Some(1_000);

    let mut customers = TableSchema::new(
        QualifiedName::new("public", "customers"),
        vec![col("id", "integer", false), col("name", "text", false)],
        &["id"],
    );
    customers.primary_key_name = Some("customers_pkey".into());
    customers.rows = Some(0);

    let mut events = TableSchema::new(
        QualifiedName::new("public", "events"),
        vec![
            col("id", "bigint", false),
            col("ext_id", "uuid", false),
            col("payload", "jsonb", true),
        ],
        &["id"],
    );
    events.primary_key_name = Some("events_pkey".into());
    events.indexes = vec![IndexInfo {
        name: "events_ext_ri".into(),
        columns: vec!["ext_id".into()],
        unique: true,
    }];
    events.replica_identity = ReplicaIdentity::Index("events_ext_ri".into());

    let shared = TableSchema::new(
        QualifiedName::new("public", "shared"),
        vec![col("id", "integer", false)],
        &["id"],
    );
    let items = TableSchema::new(
        QualifiedName::new("app", "items"),
        vec![col("id", "integer", false), col("label", "text", true)],
        &["id"],
    );

    let mut c = Catalog::new(Engine::Postgres, &["public", "app"])
        .with_table(orders)
        .with_table(customers)
        .with_table(events)
        .with_table(shared)
        .with_table(items);
    c.views = vec![QualifiedName::new("public", "order_totals")];
    c.outside = vec![
        QualifiedName::new("public", "accounts"),
        QualifiedName::new("app", "shared"),
    ];
    c
}

pub fn classes(s: &Statement) -> Vec<&'static str> {
    s.changes.iter().map(|c| c.change.class_name()).collect()
}
