"""Schema of the state store as an append-only list of migrations; PRAGMA user_version says how many ran.

Never edit a released migration: append a new one. Later issues add deployments, replicas, events and
metric samples this way.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: facts gathered from hosts, one row per host, replaced on every gathering.
    """
    CREATE TABLE host_facts (
        host TEXT PRIMARY KEY,
        gathered_at REAL NOT NULL,  -- unix seconds
        facts TEXT NOT NULL         -- JSON of llmctl.fleet.facts_parse.HostFacts
    );
    """,
    # 2: desired deployments (the plan as applied), their replicas as observed, and what happened.
    """
    CREATE TABLE deployments (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,          -- JSON of the planned replicas' shape, argv and env
        spec_hash TEXT NOT NULL,
        applied_at REAL NOT NULL
    );
    CREATE TABLE replicas (
        name TEXT PRIMARY KEY,
        deployment TEXT NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
        host TEXT NOT NULL,
        address TEXT NOT NULL,
        gpus TEXT NOT NULL,          -- comma-separated GPU indices
        port INTEGER NOT NULL,
        pid INTEGER,
        phase TEXT NOT NULL,         -- starting | ready | failed | stopped
        spec_hash TEXT NOT NULL,
        started_at REAL,
        restarts INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        subject TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX events_at ON events(at);
    CREATE TABLE metric_samples (
        replica TEXT NOT NULL,
        at REAL NOT NULL,
        sample TEXT NOT NULL          -- JSON of llmctl.control.scrape.EngineSample numbers
    );
    CREATE INDEX metric_samples_at ON metric_samples(replica, at);
    CREATE TABLE locks (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        since REAL NOT NULL
    );
    """,
    # 3: what people asked for (CLI, TUI) that the controller carries out, with the outcome.
    """
    CREATE TABLE intents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        kind TEXT NOT NULL,          -- scale | restart | stop | sleep | wake
        target TEXT NOT NULL,        -- a deployment (scale) or a replica
        arg TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'pending',  -- pending | done | failed
        result TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE scale_overrides (
        deployment TEXT PRIMARY KEY,
        replicas INTEGER NOT NULL,
        at REAL NOT NULL
    );
    """,
    # 4: what the gateway sees per deployment, written every second or so: the controller's demand signal
    # (held requests are the scale-from-zero trigger) whether the gateway runs in its process or not.
    """
    CREATE TABLE gateway_demand (
        deployment TEXT PRIMARY KEY,
        held INTEGER NOT NULL,
        in_flight INTEGER NOT NULL,
        requests_total INTEGER NOT NULL,
        last_request_at REAL,
        updated_at REAL NOT NULL
    );
    """,
    # 5: offline batch jobs started with `llmctl batch run --detach`: where they read and write, their process,
    # and their progress as the runner last wrote it (the output file itself is the checkpoint).
    """
    CREATE TABLE batch_jobs (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        deployment TEXT NOT NULL,
        input TEXT NOT NULL,
        output TEXT NOT NULL,
        log TEXT NOT NULL,
        argv TEXT NOT NULL,          -- JSON list: the command that runs (and resumes) the job
        host TEXT NOT NULL,          -- machine the process runs on
        pid INTEGER,
        state TEXT NOT NULL,         -- starting | running | done | interrupted | incomplete | failed | cancelled
        total INTEGER NOT NULL DEFAULT 0,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        tokens_per_s REAL NOT NULL DEFAULT 0,
        paused INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        summary TEXT                 -- JSON of llmctl.batch.summary.Summary once the run ends
    );
    """,
    # 6: the controller's periodic reachability check of each inventory host (`true` over the transport).
    """
    CREATE TABLE host_checks (
        host TEXT PRIMARY KEY,
        checked_at REAL NOT NULL,
        ok INTEGER NOT NULL,
        detail TEXT NOT NULL         -- the round trip in words, or the transport's error
    );
    """,
    # 7: control data in typed columns, not in the reason's words: the consecutive-failure count and the next
    # restart's time (the restart budget, llmctl.reconcile.restart), when the replica became ready, and what a
    # draining replica becomes (sleep | stop | replace) since when. Per deployment: the generation the
    # controller has reconciled and its last sign of a request, so idle clocks survive a controller restart.
    """
    ALTER TABLE replicas ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE replicas ADD COLUMN retry_at REAL;
    ALTER TABLE replicas ADD COLUMN ready_since REAL;
    ALTER TABLE replicas ADD COLUMN drain_then TEXT NOT NULL DEFAULT '';
    ALTER TABLE replicas ADD COLUMN drain_since REAL;
    CREATE TABLE deployment_status (
        deployment TEXT PRIMARY KEY,
        reconciled_generation INTEGER NOT NULL DEFAULT 0,
        last_active_at REAL,          -- unix seconds: the controller's last sign of a request
        surge TEXT NOT NULL DEFAULT ''  -- a rolling replace's extra replica on a spare slot, while it lasts
    );
    """,
    # 8: the API key of each replica on an SSH host (the engine listens beyond loopback there, so it needs
    # one). Apart from the replica rows, which are printed and exported, so a key never leaves with them.
    """
    CREATE TABLE replica_keys (
        replica TEXT PRIMARY KEY,
        key TEXT NOT NULL
    );
    """,
    # 9: typed fields of an event (JSON): what a decision was about, so that tools and tests read the pool's
    # grants and preemptions (tenant, GPUs, reason) without parsing the words.
    """
    ALTER TABLE events ADD COLUMN data TEXT NOT NULL DEFAULT '{}';
    """,
    # 10: the sleep level of a sleeping replica (vLLM 1: weights in host RAM, 2: discarded; 0 awake): its
    # cold-start tier (issue #18), and which calls wake it.
    """
    ALTER TABLE replicas ADD COLUMN sleep_level INTEGER NOT NULL DEFAULT 0;
    """,
)
