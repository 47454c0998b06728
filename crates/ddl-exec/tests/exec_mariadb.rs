//! Real stack: the executor with a PostgreSQL source and a MariaDB target (target-first ADD
//! COLUMN, CREATE INDEX): the target statements are rendered for MariaDB, run there, and the
//! target schema check passes; the operation and its audit chain are in the store.

use std::path::Path;

use lockstep_ddl_exec::exec::{new_operation, unsupported_steps, Capabilities};
use lockstep_ddl_exec::source::connect_source;
use lockstep_ddl_exec::target::TargetDb;
use lockstep_ddl_exec::{prepare, DdlPipeline, Executor, RunOutcome};
use lockstep_ddl_plan::Check;
use lockstep_e2e::{unique_name, with_cleanup, Stack};
use lockstep_store::Store;
use mysql_async::prelude::Queryable;

fn mariadb_password() -> String {
    std::env::var("LOCKSTEP_MARIADB_PASSWORD").unwrap_or_else(|_| "lockstep".into())
}

async fn mariadb(stack: &Stack) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(stack.mariadb_host.clone())
        .tcp_port(stack.mariadb_port)
        .user(Some(stack.mariadb_user.clone()))
        .pass(Some(mariadb_password()))
        .db_name(Some(stack.mariadb_database.clone()))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("mariadb")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_first_plans_run_on_a_mariadb_target() {
    let stack = Stack::get();
    let table = unique_name("ddlx_maria");
    let source = stack.pg_source().await.expect("source");
    source
        .batch_execute(&format!(
            "create table {table} (id bigint primary key, name varchar(40) not null)"
        ))
        .await
        .expect("source table");
    let mut m = mariadb(&stack).await;
    m.query_drop(format!(
        "create table {table} (id bigint primary key, name varchar(40) not null) engine=InnoDB"
    ))
    .await
    .expect("target table");
    let t2 = table.clone();
    let body = async move {
        let stack = Stack::get();
        let table = t2;
        let yaml = format!(
            "name: ddlx-maria
kafka: {{bootstrap_servers: '{kafka}', topics: [px.public.{table}]}}
target: {{engine: mariadb, host: {mhost}, port: {mport}, user: {muser}, password: '{mpw}', database: {mdb}}}
source:
  engine: postgres
  host: {host}
  port: {port}
  user: {user}
  database: {db}
  connectors: [px]
  topic_prefix: px
",
            kafka = stack.kafka_bootstrap,
            mhost = stack.mariadb_host,
            mport = stack.mariadb_port,
            muser = stack.mariadb_user,
            mpw = mariadb_password(),
            mdb = stack.mariadb_database,
            host = stack.pg_host,
            port = stack.pg_port,
            user = stack.pg_user,
            db = stack.pg_source_db,
        );
        let pipeline = DdlPipeline::parse(Path::new("maria.yaml"), &yaml).expect("pipeline");
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_dir(dir.path()).expect("store");
        let mut src = connect_source(&pipeline.source).await.expect("source");
        let mut target = TargetDb::connect(&pipeline.sink.target)
            .await
            .expect("target");

        for sql in [
            format!("ALTER TABLE {table} ADD COLUMN note varchar(20) DEFAULT 'x'"),
            format!("CREATE INDEX {table}_name ON {table} (name)"),
        ] {
            let prepared = prepare(&pipeline, &sql)
                .await
                .expect("source reachable")
                .unwrap_or_else(|r| panic!("{sql}: {r:?}"));
            assert!(
                unsupported_steps(&prepared.plans, Capabilities::of(&pipeline, false)).is_empty()
            );
            let id = store
                .create_operation(&new_operation("maria.yaml", &prepared.plans[0], "test").unwrap())
                .unwrap();
            let mut ex = Executor {
                store: &store,
                pipeline: &pipeline,
                connect: None,
                source: &mut src,
                target: &mut target,
                database: pipeline.source.database.clone(),
                actor: "test".into(),
                recoveries: Vec::new(),
                quiesce: Default::default(),
            };
            let outcome = ex.run(id).await.expect("runs");
            assert_eq!(outcome, RunOutcome::Succeeded, "{sql}: {:?}", store.get(id));
        }
        let t = lockstep_ddl_plan::TargetTable {
            schema: stack.mariadb_database.clone(),
            name: table.clone(),
        };
        assert!(target
            .check(&Check::TargetColumnExists {
                table: t.clone(),
                column: "note".into()
            })
            .await
            .unwrap());
        let shape = target.shape(&t).await.unwrap().expect("table exists");
        let note = shape.columns.iter().find(|c| c.name == "note").unwrap();
        assert!(note.nullable);
        assert!(
            note.data_type.to_lowercase().starts_with("varchar(20)"),
            "{note:?}"
        );
        assert_eq!(shape.primary_key, vec!["id".to_string()]);
        let mut m = mariadb(&stack).await;
        let indexes: Vec<String> = m
            .exec(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (stack.mariadb_database.clone(), table.clone()),
            )
            .await
            .unwrap();
        assert!(indexes.contains(&format!("{table}_name")), "{indexes:?}");
        assert!(store.verify_chain().unwrap().broken.is_none());
    };
    let cleanup = async move {
        let _ = source
            .batch_execute(&format!("drop table if exists {table}"))
            .await;
        let _ = m.query_drop(format!("drop table if exists {table}")).await;
    };
    with_cleanup(body, cleanup).await;
}
