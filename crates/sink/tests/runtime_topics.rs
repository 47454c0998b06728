//! Runtime topics (`lockstep_sink::topics`) recorded in the real target databases of the local
//! stack, PostgreSQL and MariaDB: a change is kept, the latest change of a topic wins, and
//! pipelines do not see each other's rows.

mod common;

use std::path::Path;

use common::{create_mariadb_database, mariadb_pipeline, postgres_pipeline, Cleanup};
use lockstep_e2e::{unique_name, Stack};
use lockstep_sink::target::Target;
use lockstep_sink::topics::{effective_topics, RuntimeTopic};
use lockstep_sink::SinkPipeline;

fn topic(name: &str, table: Option<&str>, removed: bool) -> RuntimeTopic {
    RuntimeTopic {
        topic: name.to_string(),
        table: table.map(str::to_string),
        removed,
    }
}

async fn round_trip(yaml: &str, pipeline: &str) {
    let parsed = SinkPipeline::parse(Path::new("test.yaml"), yaml).expect("pipeline");
    let mut target = Target::connect(&parsed.target).await.expect("connect");
    let other = format!("{pipeline}-other");
    assert_eq!(target.load_topics(pipeline).await.expect("load"), vec![]);
    let added = topic("p.public.fresh", Some("fresh_copy"), false);
    target.save_topic(pipeline, &added).await.expect("save");
    target
        .save_topic(pipeline, &topic("p.public.orders", None, true))
        .await
        .expect("save removal");
    target
        .save_topic(&other, &topic("p.public.elsewhere", None, false))
        .await
        .expect("save other");
    let loaded = target.load_topics(pipeline).await.expect("load");
    assert_eq!(
        loaded,
        vec![added.clone(), topic("p.public.orders", None, true)]
    );
    // The latest change of a topic wins (a DROP after a CREATE), and saving twice is harmless.
    let dropped = topic("p.public.fresh", None, true);
    target.save_topic(pipeline, &dropped).await.expect("save");
    target
        .save_topic(pipeline, &dropped)
        .await
        .expect("save again");
    let loaded = target.load_topics(pipeline).await.expect("load");
    assert_eq!(loaded, vec![dropped, topic("p.public.orders", None, true)]);
    assert_eq!(
        effective_topics(
            &["p.public.orders".to_string(), "p.public.b".to_string()],
            &loaded
        ),
        vec!["p.public.b".to_string()]
    );
    // A new connection (a restarted sink) reads the same.
    let mut again = Target::connect(&parsed.target).await.expect("connect");
    assert_eq!(again.load_topics(pipeline).await.expect("load"), loaded);
    assert_eq!(again.load_topics(&other).await.expect("load").len(), 1);
}

#[tokio::test]
async fn runtime_topics_survive_on_postgres() {
    let stack = Stack::get();
    let mut cleanup = Cleanup::new(&stack);
    let name = unique_name("rtpg").replace('_', "-");
    cleanup.created.pg_target_sql.push(format!(
        "delete from lockstep.sink_topics where pipeline in ('{name}', '{name}-other')"
    ));
    let yaml = postgres_pipeline(&stack, &name, &["p.public.orders".to_string()]);
    round_trip(&yaml, &name).await;
}

#[tokio::test]
async fn runtime_topics_survive_on_mariadb() {
    let stack = Stack::get();
    let mut cleanup = Cleanup::new(&stack);
    let database = unique_name("rtmy");
    create_mariadb_database(&mut cleanup, &database).await;
    let name = unique_name("rtmy").replace('_', "-");
    let yaml = mariadb_pipeline(&stack, &name, &["p.public.orders".to_string()], &database);
    round_trip(&yaml, &name).await;
}
