-- Statistics of an A/B send by variant (docs/api.md, "A/B tests and holdout"): outcomes
-- per send job, variant ("holdout" included) and outcome, next to stats_outcomes (which
-- keeps the job's totals). Engagement by variant needs no table: each variant is its own
-- content, and stats_engagement is kept per content.
CREATE TABLE stats_variant_outcomes (
    send_job_id  bigint NOT NULL,
    variant      text NOT NULL,
    outcome      text NOT NULL,               -- 'delivered' or the skip reason
    count        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (send_job_id, variant, outcome)
);
