--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SELECT pg_catalog.set_config('search_path', '', false);



--
-- Name: alert_leases; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_leases (
    name character varying(64) NOT NULL,
    holder character varying(128) NOT NULL,
    expires_at double precision NOT NULL
);


--
-- Name: alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alerts (
    id integer NOT NULL,
    key character varying(160) NOT NULL,
    active_key character varying(160),
    scope character varying(16) NOT NULL,
    subject character varying(64) NOT NULL,
    commune character varying(64) NOT NULL,
    cause character varying(16) NOT NULL,
    severity character varying(16) NOT NULL,
    problem character varying(64) NOT NULL,
    detail character varying(160) DEFAULT ''::character varying NOT NULL,
    state character varying(16) NOT NULL,
    started_at double precision NOT NULL,
    opened_at double precision NOT NULL,
    resolved_at double precision,
    duration_s double precision,
    flaps integer NOT NULL,
    down integer NOT NULL,
    total integer NOT NULL,
    members text NOT NULL,
    acked_by character varying(128),
    acked_at double precision,
    ack_comment text,
    silenced_until double precision,
    suppressed integer NOT NULL,
    notified_at double precision,
    reminders integer NOT NULL
);


--
-- Name: alerts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.alerts_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: alerts_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.alerts_id_seq OWNED BY public.alerts.id;


--
-- Name: api_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_tokens (
    id integer NOT NULL,
    hash character varying(64) NOT NULL,
    user_id integer NOT NULL,
    name character varying(64) NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision,
    last_used double precision,
    revoked integer DEFAULT 0 NOT NULL
);


--
-- Name: api_tokens_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.api_tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: api_tokens_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.api_tokens_id_seq OWNED BY public.api_tokens.id;


--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    id integer NOT NULL,
    at double precision NOT NULL,
    actor character varying(64) NOT NULL,
    action character varying(32) NOT NULL,
    target character varying(128) NOT NULL,
    commune character varying(64) NOT NULL,
    detail text NOT NULL,
    ip character varying(64) NOT NULL,
    user_agent character varying(256) NOT NULL,
    prev_hash character varying(64) NOT NULL,
    hash character varying(64) NOT NULL
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_log_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;


--
-- Name: dead_letters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dead_letters (
    id integer NOT NULL,
    received_at double precision NOT NULL,
    topic text NOT NULL,
    node_guess character varying(64),
    reason text NOT NULL,
    size integer NOT NULL,
    payload bytea NOT NULL
);


--
-- Name: dead_letters_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.dead_letters_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: dead_letters_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.dead_letters_id_seq OWNED BY public.dead_letters.id;


--
-- Name: event_notes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.event_notes (
    id integer NOT NULL,
    event integer NOT NULL,
    author character varying(64) NOT NULL,
    at double precision NOT NULL,
    text text NOT NULL
);


--
-- Name: event_notes_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.event_notes_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: event_notes_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.event_notes_id_seq OWNED BY public.event_notes.id;


--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    id integer NOT NULL,
    device character varying(64) NOT NULL,
    event_id character varying(64) NOT NULL,
    node character varying(64) NOT NULL,
    commune character varying(64) NOT NULL,
    site character varying(64) NOT NULL,
    start double precision NOT NULL,
    "end" double precision,
    last_ts double precision NOT NULL,
    duration_s double precision NOT NULL,
    local_minute integer NOT NULL,
    phase character varying(8) NOT NULL,
    peak_area_pct double precision NOT NULL,
    boxes text NOT NULL,
    zones text NOT NULL,
    score double precision,
    frames integer,
    snapshot_sha256 character varying(64),
    version_ts double precision NOT NULL,
    messages integer NOT NULL,
    received_at double precision NOT NULL,
    reviewed_by character varying(64),
    reviewed_at double precision,
    keep integer DEFAULT 0 NOT NULL,
    exports integer DEFAULT 0 NOT NULL
);


--
-- Name: events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.events_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.events_id_seq OWNED BY public.events.id;


--
-- Name: evidence_export_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.evidence_export_events (
    export integer NOT NULL,
    event integer NOT NULL
);


--
-- Name: evidence_exports; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.evidence_exports (
    id integer NOT NULL,
    created_at double precision NOT NULL,
    created_by character varying(64) NOT NULL,
    communes text NOT NULL,
    events text NOT NULL,
    reason text NOT NULL,
    filename character varying(128) NOT NULL,
    sha256 character varying(64) NOT NULL,
    size integer NOT NULL
);


--
-- Name: evidence_exports_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.evidence_exports_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: evidence_exports_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.evidence_exports_id_seq OWNED BY public.evidence_exports.id;


--
-- Name: login_failures; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.login_failures (
    id integer NOT NULL,
    at double precision NOT NULL,
    username character varying(64) NOT NULL,
    ip character varying(64) NOT NULL
);


--
-- Name: login_failures_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.login_failures_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: login_failures_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.login_failures_id_seq OWNED BY public.login_failures.id;


--
-- Name: maintenance_windows; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.maintenance_windows (
    id integer NOT NULL,
    target_kind character varying(16) NOT NULL,
    target character varying(64) NOT NULL,
    starts_at double precision NOT NULL,
    ends_at double precision,
    weekdays character varying(16) NOT NULL,
    local_start character varying(5) NOT NULL,
    duration_s double precision NOT NULL,
    tz character varying(64) NOT NULL,
    comment text NOT NULL
);


--
-- Name: maintenance_windows_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.maintenance_windows_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: maintenance_windows_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.maintenance_windows_id_seq OWNED BY public.maintenance_windows.id;


--
-- Name: node_sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.node_sessions (
    node character varying(64) NOT NULL,
    session character varying(32) NOT NULL,
    first_seq integer NOT NULL,
    max_seq integer NOT NULL,
    received integer NOT NULL,
    first_seen double precision NOT NULL
);


--
-- Name: nodes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.nodes (
    node character varying(64) NOT NULL,
    commune character varying(64) NOT NULL,
    known integer NOT NULL,
    status character varying(16),
    status_ts double precision,
    status_reason character varying(16),
    agent_version character varying(64),
    session character varying(32),
    last_seq integer,
    last_msg_ts double precision,
    last_seen double precision,
    messages integer NOT NULL,
    dead_letters integer NOT NULL,
    rate_limited integer DEFAULT 0 NOT NULL
);


--
-- Name: notice_outbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notice_outbox (
    id integer NOT NULL,
    channel character varying(64) NOT NULL,
    alert_id integer NOT NULL,
    kind character varying(16) NOT NULL,
    payload text NOT NULL,
    created_at double precision NOT NULL,
    next_at double precision NOT NULL,
    attempts integer NOT NULL,
    state character varying(8) NOT NULL,
    done_at double precision,
    last_error text NOT NULL
);


--
-- Name: notice_outbox_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.notice_outbox_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: notice_outbox_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.notice_outbox_id_seq OWNED BY public.notice_outbox.id;


--
-- Name: reports; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.reports (
    id integer NOT NULL,
    kind character varying(32) NOT NULL,
    period character varying(32) NOT NULL,
    commune character varying(64) NOT NULL,
    first character varying(10) NOT NULL,
    last character varying(10) NOT NULL,
    origin character varying(16) NOT NULL,
    state character varying(16) NOT NULL,
    holder character varying(128) NOT NULL,
    claimed_at double precision NOT NULL,
    done_at double precision,
    files text NOT NULL,
    error text NOT NULL
);


--
-- Name: reports_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.reports_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: reports_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.reports_id_seq OWNED BY public.reports.id;


--
-- Name: snapshots; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.snapshots (
    sha256 character varying(64) NOT NULL,
    node character varying(64) NOT NULL,
    event_id character varying(64) NOT NULL,
    size integer NOT NULL,
    received_at double precision NOT NULL
);


--
-- Name: user_sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.user_sessions (
    id character varying(64) NOT NULL,
    user_id integer NOT NULL,
    csrf character varying(64) NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    last_seen double precision NOT NULL,
    ip character varying(64) NOT NULL,
    user_agent character varying(256) NOT NULL
);


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id integer NOT NULL,
    username character varying(64) NOT NULL,
    display_name character varying(128) NOT NULL,
    roles character varying(128) NOT NULL,
    communes text NOT NULL,
    password_hash text NOT NULL,
    disabled integer DEFAULT 0 NOT NULL,
    lang character varying(8) DEFAULT 'vi'::character varying NOT NULL,
    created_at double precision NOT NULL,
    password_changed_at double precision NOT NULL
);


--
-- Name: users_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.users_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: users_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;


--
-- Name: alerts id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts ALTER COLUMN id SET DEFAULT nextval('public.alerts_id_seq'::regclass);


--
-- Name: api_tokens id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_tokens ALTER COLUMN id SET DEFAULT nextval('public.api_tokens_id_seq'::regclass);


--
-- Name: audit_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log ALTER COLUMN id SET DEFAULT nextval('public.audit_log_id_seq'::regclass);


--
-- Name: dead_letters id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letters ALTER COLUMN id SET DEFAULT nextval('public.dead_letters_id_seq'::regclass);


--
-- Name: event_notes id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_notes ALTER COLUMN id SET DEFAULT nextval('public.event_notes_id_seq'::regclass);


--
-- Name: events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events ALTER COLUMN id SET DEFAULT nextval('public.events_id_seq'::regclass);


--
-- Name: evidence_exports id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.evidence_exports ALTER COLUMN id SET DEFAULT nextval('public.evidence_exports_id_seq'::regclass);


--
-- Name: login_failures id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.login_failures ALTER COLUMN id SET DEFAULT nextval('public.login_failures_id_seq'::regclass);


--
-- Name: maintenance_windows id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.maintenance_windows ALTER COLUMN id SET DEFAULT nextval('public.maintenance_windows_id_seq'::regclass);


--
-- Name: notice_outbox id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notice_outbox ALTER COLUMN id SET DEFAULT nextval('public.notice_outbox_id_seq'::regclass);


--
-- Name: reports id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reports ALTER COLUMN id SET DEFAULT nextval('public.reports_id_seq'::regclass);


--
-- Name: users id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);


--
-- Data for Name: alert_leases; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alert_leases VALUES ('alert-evaluator', 'ciot-cloud-1', 1790000015);


--
-- Data for Name: alerts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alerts VALUES (1, 'node:dr-ap-02', 'node:dr-ap-02', 'node', 'dr-ap-02', 'da-ron', 'silent', 'critical', '', '', 'acknowledged', 1790000100, 1790000200, NULL, NULL, 0, 0, 0, '', 'kỹ thuật viên Hùng', 1790000260, 'đang đi kiểm tra', NULL, 0, NULL, 0);
INSERT INTO public.alerts VALUES (2, 'node:tt-ap-01', NULL, 'node', 'tt-ap-01', 'tu-tra', 'silent', 'critical', '', '', 'resolved', 1790000100, 1790000300, 1790000900, 800, 0, 0, 0, '', NULL, NULL, NULL, NULL, 0, NULL, 0);


--
-- Data for Name: api_tokens; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.api_tokens VALUES (1, 'f79d852e9462b8ea552fd3af590cd6862114b71496983057eca59f51e514036d', 1, 'release-script', 1796200919.9493618, NULL, NULL, 0);


--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.audit_log VALUES (1, 1796200920.0697682, 'admin', 'login', '', '', '{}', '127.0.0.1', 'release-browser', '0000000000000000000000000000000000000000000000000000000000000000', '9ecfdf95e5bf85b627b5a77ab6a0db626f1d6514844f5da2f5171a6d5b633811');
INSERT INTO public.audit_log VALUES (2, 1796200920.0723095, 'ca-daron', 'event_review', 'event:1', 'da-ron', '{"reviewed": true}', '', '', '9ecfdf95e5bf85b627b5a77ab6a0db626f1d6514844f5da2f5171a6d5b633811', 'b83b2a62ffa9059ec58ac4a49891d33d63a4d2b06dc0a5c47bfecc25b4024ff5');
INSERT INTO public.audit_log VALUES (3, 1796200920.0737123, 'ca-daron', 'export_create', 'export:1', 'da-ron', '{"events": [1]}', '', '', 'b83b2a62ffa9059ec58ac4a49891d33d63a4d2b06dc0a5c47bfecc25b4024ff5', '066b61962e5ccdf73b93c2df6d91ed6426b3462403e7c717c0e3ddfa8c84ed69');


--
-- Data for Name: dead_letters; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.dead_letters VALUES (1, 1790000000, 'ciot/v1/da-ron/dr-ap-01/health', 'dr-ap-01', 'payload: Invalid JSON', 35, '\x7b2276223a312c226e6f6465223a2264722d61702d3031222c00ff2067617262616765');


--
-- Data for Name: event_notes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.event_notes VALUES (1, 1, 'ca-daron', 1790000100, 'Đã xem: người đi bộ');


--
-- Data for Name: events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.events VALUES (1, 'dr-cam-01', 'ev-release-1', 'dr-cam-01', 'da-ron', 'dr-spot-01', 1790000000, 1790000012.5, 1790000012.5, 12.5, 1273, 'end', 7.25, '[{"x":0.1,"y":0.2,"w":0.3,"h":0.4}]', 'gate', 0.5, 30, '8cc6d88fd9b59e5e70d72cfb6b93e8cd88b895f1dd682265059d85d90dd55190', 1790000012.5, 1, 1790000013, 'ca-daron', 1790000101, 1, 1);


--
-- Data for Name: evidence_export_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.evidence_export_events VALUES (1, 1);


--
-- Data for Name: evidence_exports; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.evidence_exports VALUES (1, 1796200919.6710334, 'ca-daron', 'da-ron', '1', 'vụ việc 12', 'bang-chung-1-20261202-154159.zip', 'e7129165d59a4211cd6504325b28fa234a55bcc6b4046c7ac2e8d4cc2c9f59aa', 2870);


--
-- Data for Name: login_failures; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.login_failures VALUES (1, 1796200920.0592377, 'ca-daron', '10.0.0.9');


--
-- Data for Name: maintenance_windows; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.maintenance_windows VALUES (1, 'node', 'lx-ap-01', 1790000000, NULL, '1,3', '02:00', 3600, 'Asia/Ho_Chi_Minh', '');


--
-- Data for Name: node_sessions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.node_sessions VALUES ('dr-ap-01', 'a1b2c3d4', 1, 43, 41, 1790000000);


--
-- Data for Name: nodes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.nodes VALUES ('dr-cam-01', 'da-ron', 1, NULL, NULL, NULL, NULL, NULL, NULL, 1790000019, 1790000020, 7, 0, 0);
INSERT INTO public.nodes VALUES ('dr-ap-01', 'da-ron', 1, 'online', 1790000000, 'birth', '0.1.0', 'a1b2c3d4', 43, 1790000059, 1790000060, 41, 0, 0);


--
-- Data for Name: notice_outbox; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.notice_outbox VALUES (1, 'webhook', 1, 'open', '{"kind": "open", "alert_id": 1, "key": "node:dr-ap-02", "scope": "node", "subject": "dr-ap-02", "commune": "da-ron", "cause": "silent", "severity": "critical", "started_at": 1790000000.0, "at": 1790000200.0, "duration_s": 0.0, "flaps": 0, "down": 0, "total": 0, "problem": "", "members": [], "detail": ""}', 1790000200, 1790000200, 0, 'pending', NULL, '');


--
-- Data for Name: reports; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.reports VALUES (1, 'wifi', '2026-08', '', '2026-08-01', '2026-08-31', 'monthly', 'failed', 'w1', 1796200920.0809283, NULL, '[]', 'InfluxDB unreachable');


--
-- Data for Name: snapshots; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.snapshots VALUES ('8cc6d88fd9b59e5e70d72cfb6b93e8cd88b895f1dd682265059d85d90dd55190', 'dr-cam-01', 'ev-release-1', 24, 1790000014);


--
-- Data for Name: user_sessions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.user_sessions VALUES ('75fe5f6abdbfcd6c9520f00fc42eb51f114109f765cfa856fb6f38c8667dccee', 1, '8eHBLWSuM2NjnWI-1DouT-MLJ2R9sTfAt-eAVDZTgFE', 1796200919.953295, 1796244119.953295, 1796200919.953295, '127.0.0.1', 'release-browser');


--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.users VALUES (1, 'admin', 'Quản trị', 'admin', '', '$argon2id$v=19$m=65536,t=3,p=4$I5FygnPRYV43HVyVm17jxw$pN5C9enjsiW3sm/6B+9cq453BEu9zt3hMD97IMVssP4', 0, 'vi', 1796200919.7402027, 1796200919.7402027);
INSERT INTO public.users VALUES (2, 'ca-daron', 'ca-daron', 'police', 'da-ron', '$argon2id$v=19$m=65536,t=3,p=4$N4zu+iC1EKFixfSPWcdpeg$YNqKEDtjWGGuM3H1sVAnO8Yo5ShJnd8VxinMfa6OSSs', 0, 'vi', 1796200919.841388, 1796200919.841388);


--
-- Name: alerts_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.alerts_id_seq', 2, true);


--
-- Name: api_tokens_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.api_tokens_id_seq', 1, true);


--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.audit_log_id_seq', 3, true);


--
-- Name: dead_letters_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.dead_letters_id_seq', 1, true);


--
-- Name: event_notes_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.event_notes_id_seq', 1, true);


--
-- Name: events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.events_id_seq', 1, true);


--
-- Name: evidence_exports_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.evidence_exports_id_seq', 1, true);


--
-- Name: login_failures_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.login_failures_id_seq', 1, true);


--
-- Name: maintenance_windows_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.maintenance_windows_id_seq', 1, true);


--
-- Name: notice_outbox_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.notice_outbox_id_seq', 1, true);


--
-- Name: reports_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.reports_id_seq', 1, true);


--
-- Name: users_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.users_id_seq', 2, true);


--
-- Name: alert_leases alert_leases_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_leases
    ADD CONSTRAINT alert_leases_pkey PRIMARY KEY (name);


--
-- Name: alerts alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (id);


--
-- Name: api_tokens api_tokens_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_hash_key UNIQUE (hash);


--
-- Name: api_tokens api_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: dead_letters dead_letters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (id);


--
-- Name: event_notes event_notes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_notes
    ADD CONSTRAINT event_notes_pkey PRIMARY KEY (id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);


--
-- Name: evidence_export_events evidence_export_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.evidence_export_events
    ADD CONSTRAINT evidence_export_events_pkey PRIMARY KEY (export, event);


--
-- Name: evidence_exports evidence_exports_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.evidence_exports
    ADD CONSTRAINT evidence_exports_pkey PRIMARY KEY (id);


--
-- Name: login_failures login_failures_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.login_failures
    ADD CONSTRAINT login_failures_pkey PRIMARY KEY (id);


--
-- Name: maintenance_windows maintenance_windows_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.maintenance_windows
    ADD CONSTRAINT maintenance_windows_pkey PRIMARY KEY (id);


--
-- Name: node_sessions node_sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.node_sessions
    ADD CONSTRAINT node_sessions_pkey PRIMARY KEY (node, session);


--
-- Name: nodes nodes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_pkey PRIMARY KEY (node);


--
-- Name: notice_outbox notice_outbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notice_outbox
    ADD CONSTRAINT notice_outbox_pkey PRIMARY KEY (id);


--
-- Name: reports reports_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_pkey PRIMARY KEY (id);


--
-- Name: snapshots snapshots_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.snapshots
    ADD CONSTRAINT snapshots_pkey PRIMARY KEY (sha256);


--
-- Name: reports uq_reports_kind_period_commune; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT uq_reports_kind_period_commune UNIQUE (kind, period, commune);


--
-- Name: user_sessions user_sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_sessions
    ADD CONSTRAINT user_sessions_pkey PRIMARY KEY (id);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: users users_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_username_key UNIQUE (username);


--
-- Name: ix_alerts_commune; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alerts_commune ON public.alerts USING btree (commune);


--
-- Name: ix_alerts_key; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alerts_key ON public.alerts USING btree (key);


--
-- Name: ix_api_tokens_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_api_tokens_user_id ON public.api_tokens USING btree (user_id);


--
-- Name: ix_audit_log_action; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_audit_log_action ON public.audit_log USING btree (action);


--
-- Name: ix_audit_log_actor; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_audit_log_actor ON public.audit_log USING btree (actor);


--
-- Name: ix_audit_log_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_audit_log_at ON public.audit_log USING btree (at);


--
-- Name: ix_dead_letters_node_guess; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_dead_letters_node_guess ON public.dead_letters USING btree (node_guess);


--
-- Name: ix_dead_letters_received_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_dead_letters_received_at ON public.dead_letters USING btree (received_at);


--
-- Name: ix_event_notes_event; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_event_notes_event ON public.event_notes USING btree (event);


--
-- Name: ix_events_commune_start; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_events_commune_start ON public.events USING btree (commune, start);


--
-- Name: ix_events_device_start; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_events_device_start ON public.events USING btree (device, start);


--
-- Name: ix_events_start; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_events_start ON public.events USING btree (start);


--
-- Name: ix_login_failures_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_login_failures_at ON public.login_failures USING btree (at);


--
-- Name: ix_login_failures_ip; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_login_failures_ip ON public.login_failures USING btree (ip);


--
-- Name: ix_login_failures_username; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_login_failures_username ON public.login_failures USING btree (username);


--
-- Name: ix_notice_outbox_alert_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_notice_outbox_alert_id ON public.notice_outbox USING btree (alert_id);


--
-- Name: ix_notice_outbox_queue; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_notice_outbox_queue ON public.notice_outbox USING btree (state, channel, id);


--
-- Name: ix_user_sessions_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_user_sessions_user_id ON public.user_sessions USING btree (user_id);


--
-- Name: ux_alerts_active_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ux_alerts_active_key ON public.alerts USING btree (active_key);


--
-- Name: ux_events_device_event; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ux_events_device_event ON public.events USING btree (device, event_id);


--
-- Name: api_tokens api_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: event_notes event_notes_event_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_notes
    ADD CONSTRAINT event_notes_event_fkey FOREIGN KEY (event) REFERENCES public.events(id) ON DELETE CASCADE;


--
-- Name: evidence_export_events evidence_export_events_export_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.evidence_export_events
    ADD CONSTRAINT evidence_export_events_export_fkey FOREIGN KEY (export) REFERENCES public.evidence_exports(id);


--
-- Name: user_sessions user_sessions_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_sessions
    ADD CONSTRAINT user_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


