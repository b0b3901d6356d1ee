//! A second external service on the real Moodle, made for one test: the lab's service minus the
//! functions the test names, with a token of its own for the same web-service user (or, with
//! [`ScratchService::for_user`], for another account, such as the site administrator).
//!
//! An operator removes a function from the service in Site administration; a test cannot click,
//! and must not change the service every other test is using at the same moment, so it writes
//! what that page writes (`external_services`, `external_services_functions`,
//! `external_tokens`) into the lab's database, beside the real service. Moodle reads these
//! tables on every web-service request. `MOODLE_TEST_DB_URL` names the database (default
//! `postgres://postgres@127.0.0.1:5432/moodle`, where `setup.sh` puts it).

use sqlx::postgres::PgPool;
use sqlx::Row;

use crate::real_moodle::RealMoodle;

/// The lab's own service (`setup.sh`).
const LAB_SERVICE: &str = "openvle_provisioning";

/// The scratch service; removed by [`ScratchService::remove`].
pub struct ScratchService {
    pool: PgPool,
    service_id: i64,
    /// The token bound to the scratch service.
    pub token: String,
}

impl ScratchService {
    /// The lab service's copy without `missing`, and a token for it.
    pub async fn without(site: &RealMoodle, missing: &[&str]) -> ScratchService {
        Self::make(site, missing, None).await
    }

    /// The lab service's copy (all its functions) with a token for the account `user_id`
    /// instead of the web-service user's: `2` is the site administrator `admin`, to see what
    /// an operator who made the token for the admin account sees.
    pub async fn for_user(site: &RealMoodle, user_id: i64) -> ScratchService {
        Self::make(site, &[], Some(user_id)).await
    }

    async fn make(site: &RealMoodle, missing: &[&str], user_id: Option<i64>) -> ScratchService {
        let url = std::env::var("MOODLE_TEST_DB_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/moodle".into());
        let pool = PgPool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("the lab's database at {url}: {e}"));
        let tag = crate::real_moodle::run_tag();
        let mut tx = pool.begin().await.expect("begin");
        let lab: i64 =
            sqlx::query_scalar("SELECT id FROM mdl_external_services WHERE shortname = $1")
                .bind(LAB_SERVICE)
                .fetch_one(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("the lab's service {LAB_SERVICE}: {e}"));
        let service_id: i64 = sqlx::query_scalar(
            "INSERT INTO mdl_external_services
                 (name, enabled, requiredcapability, restrictedusers, component, timecreated,
                  timemodified, shortname, downloadfiles, uploadfiles)
             SELECT name || ' scratch ' || $2, 1, requiredcapability, restrictedusers, component,
                    timecreated, timemodified, 'scratch_' || $2, downloadfiles, uploadfiles
             FROM mdl_external_services WHERE id = $1 RETURNING id",
        )
        .bind(lab)
        .bind(&tag)
        .fetch_one(&mut *tx)
        .await
        .expect("copy the service");
        let missing: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
        sqlx::query(
            "INSERT INTO mdl_external_services_functions (externalserviceid, functionname)
             SELECT $2, functionname FROM mdl_external_services_functions
             WHERE externalserviceid = $1 AND functionname <> ALL($3)",
        )
        .bind(lab)
        .bind(service_id)
        .bind(&missing)
        .execute(&mut *tx)
        .await
        .expect("copy the functions");
        let token = format!("{:032x}", rand::random::<u128>());
        let row = sqlx::query(
            "INSERT INTO mdl_external_tokens
                 (token, privatetoken, tokentype, userid, externalserviceid, sid, contextid,
                  creatorid, iprestriction, validuntil, timecreated, lastaccess, name)
             SELECT $3, NULL, tokentype, COALESCE($4, userid), $2, NULL, contextid, creatorid,
                    NULL, 0, timecreated, NULL, 'scratch'
             FROM mdl_external_tokens WHERE token = $1 RETURNING id",
        )
        .bind(&site.token)
        .bind(service_id)
        .bind(&token)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .expect("copy the token");
        assert!(
            row.is_some_and(|r| r.get::<i64, _>("id") > 0),
            "the lab's token is in mdl_external_tokens"
        );
        tx.commit().await.expect("commit");
        ScratchService {
            pool,
            service_id,
            token,
        }
    }

    /// Deletes the scratch service, its functions and its token.
    pub async fn remove(self) {
        for sql in [
            "DELETE FROM mdl_external_tokens WHERE externalserviceid = $1",
            "DELETE FROM mdl_external_services_functions WHERE externalserviceid = $1",
            "DELETE FROM mdl_external_services WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(self.service_id)
                .execute(&self.pool)
                .await
                .expect("remove the scratch service");
        }
        self.pool.close().await;
    }
}
