"""Scheduler metrics (prometheus-client); labels are bounded."""

from prometheus_client import Counter, Histogram

BATCHES = Counter("pigeonhole_scheduler_batches_total", "SendBatch events acknowledged by Kafka")
RECIPIENTS = Counter("pigeonhole_scheduler_recipients_total", "Recipients scheduled in batches")
JOBS_COMPLETED = Counter("pigeonhole_scheduler_jobs_completed_total", "Send jobs run to the end")
JOB_ERRORS = Counter("pigeonhole_scheduler_job_errors_total", "Send job runs that failed")
PRODUCE_SECONDS = Histogram(
    "pigeonhole_scheduler_produce_seconds",
    "Time from producing a batch to Kafka's acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
PURGED = Counter("pigeonhole_scheduler_purged_entries_total", "Expired inbox entries deleted")
LEASE_RENEWAL_FAILURES = Counter(
    "pigeonhole_scheduler_lease_renewal_failures_total",
    "Lease heartbeats that PostgreSQL did not confirm (the job stops if the lease lapses)",
)
