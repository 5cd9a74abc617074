BEGIN TRANSACTION;
CREATE TABLE alert_leases (
	name VARCHAR(64) NOT NULL, 
	holder VARCHAR(128) NOT NULL, 
	expires_at FLOAT NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "alert_leases" VALUES('alert-evaluator','ciot-cloud-1',1790000015.0);
CREATE TABLE alerts (
	id INTEGER NOT NULL, 
	"key" VARCHAR(160) NOT NULL, 
	active_key VARCHAR(160), 
	scope VARCHAR(16) NOT NULL, 
	subject VARCHAR(64) NOT NULL, 
	commune VARCHAR(64) NOT NULL, 
	cause VARCHAR(16) NOT NULL, 
	severity VARCHAR(16) NOT NULL, 
	problem VARCHAR(64) NOT NULL, 
	detail VARCHAR(160) DEFAULT '' NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	started_at FLOAT NOT NULL, 
	opened_at FLOAT NOT NULL, 
	resolved_at FLOAT, 
	duration_s FLOAT, 
	flaps INTEGER NOT NULL, 
	down INTEGER NOT NULL, 
	total INTEGER NOT NULL, 
	members TEXT NOT NULL, 
	acked_by VARCHAR(128), 
	acked_at FLOAT, 
	ack_comment TEXT, 
	silenced_until FLOAT, 
	suppressed INTEGER NOT NULL, 
	notified_at FLOAT, 
	reminders INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "alerts" VALUES(1,'node:dr-ap-02','node:dr-ap-02','node','dr-ap-02','da-ron','silent','critical','','','acknowledged',1790000100.0,1790000200.0,NULL,NULL,0,0,0,'','kỹ thuật viên Hùng',1790000260.0,'đang đi kiểm tra',NULL,0,NULL,0);
INSERT INTO "alerts" VALUES(2,'node:tt-ap-01',NULL,'node','tt-ap-01','tu-tra','silent','critical','','','resolved',1790000100.0,1790000300.0,1790000900.0,800.0,0,0,0,'',NULL,NULL,NULL,NULL,0,NULL,0);
CREATE TABLE api_tokens (
	id INTEGER NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	user_id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	created_at FLOAT NOT NULL, 
	expires_at FLOAT, 
	last_used FLOAT, 
	revoked INTEGER DEFAULT '0' NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (hash), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);
INSERT INTO "api_tokens" VALUES(1,'a25af4ba3b4bcc233c74fb3dba65cffea69c3a407677f9e6a9c9351d6ae5ffdb',1,'release-script',1.79620091891603350644e+09,NULL,NULL,0);
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	at FLOAT NOT NULL, 
	actor VARCHAR(64) NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	target VARCHAR(128) NOT NULL, 
	commune VARCHAR(64) NOT NULL, 
	detail TEXT NOT NULL, 
	ip VARCHAR(64) NOT NULL, 
	user_agent VARCHAR(256) NOT NULL, 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "audit_log" VALUES(1,1.79620091902997612957e+09,'admin','login','','','{}','127.0.0.1','release-browser','0000000000000000000000000000000000000000000000000000000000000000','44881ce65c44f8a80e0c832af776003166ac66372420cb2389d38c2c718f519c');
INSERT INTO "audit_log" VALUES(2,1.79620091903204655648e+09,'ca-daron','event_review','event:1','da-ron','{"reviewed": true}','','','44881ce65c44f8a80e0c832af776003166ac66372420cb2389d38c2c718f519c','b82decd1f272998a8422f4b95ba7b24fad908864146cbbc8a30ed118123fb8b6');
INSERT INTO "audit_log" VALUES(3,1.79620091903307938568e+09,'ca-daron','export_create','export:1','da-ron','{"events": [1]}','','','b82decd1f272998a8422f4b95ba7b24fad908864146cbbc8a30ed118123fb8b6','31bf52dad639c601978f688a4f06fd450424bb9777e1b6c36b838f8f37b1f58f');
CREATE TABLE dead_letters (
	id INTEGER NOT NULL, 
	received_at FLOAT NOT NULL, 
	topic TEXT NOT NULL, 
	node_guess VARCHAR(64), 
	reason TEXT NOT NULL, 
	size INTEGER NOT NULL, 
	payload BLOB NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "dead_letters" VALUES(1,1790000000.0,'ciot/v1/da-ron/dr-ap-01/health','dr-ap-01','payload: Invalid JSON',35,X'7B2276223A312C226E6F6465223A2264722D61702D3031222C00FF2067617262616765');
CREATE TABLE event_notes (
	id INTEGER NOT NULL, 
	event INTEGER NOT NULL, 
	author VARCHAR(64) NOT NULL, 
	at FLOAT NOT NULL, 
	text TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(event) REFERENCES events (id) ON DELETE CASCADE
);
INSERT INTO "event_notes" VALUES(1,1,'ca-daron',1790000100.0,'Đã xem: người đi bộ');
CREATE TABLE events (
	id INTEGER NOT NULL, 
	device VARCHAR(64) NOT NULL, 
	event_id VARCHAR(64) NOT NULL, 
	node VARCHAR(64) NOT NULL, 
	commune VARCHAR(64) NOT NULL, 
	site VARCHAR(64) NOT NULL, 
	start FLOAT NOT NULL, 
	"end" FLOAT, 
	last_ts FLOAT NOT NULL, 
	duration_s FLOAT NOT NULL, 
	local_minute INTEGER NOT NULL, 
	phase VARCHAR(8) NOT NULL, 
	peak_area_pct FLOAT NOT NULL, 
	boxes TEXT NOT NULL, 
	zones TEXT NOT NULL, 
	score FLOAT, 
	frames INTEGER, 
	snapshot_sha256 VARCHAR(64), 
	version_ts FLOAT NOT NULL, 
	messages INTEGER NOT NULL, 
	received_at FLOAT NOT NULL, 
	reviewed_by VARCHAR(64), 
	reviewed_at FLOAT, 
	keep INTEGER DEFAULT '0' NOT NULL, 
	exports INTEGER DEFAULT '0' NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "events" VALUES(1,'dr-cam-01','ev-release-1','dr-cam-01','da-ron','dr-spot-01',1790000000.0,1790000012.5,1790000012.5,12.5,1273,'end',7.25,'[{"x":0.1,"y":0.2,"w":0.3,"h":0.4}]','gate',0.5,30,'8cc6d88fd9b59e5e70d72cfb6b93e8cd88b895f1dd682265059d85d90dd55190',1790000012.5,1,1790000013.0,'ca-daron',1790000101.0,1,1);
CREATE TABLE evidence_export_events (
	export INTEGER NOT NULL, 
	event INTEGER NOT NULL, 
	PRIMARY KEY (export, event), 
	FOREIGN KEY(export) REFERENCES evidence_exports (id)
);
INSERT INTO "evidence_export_events" VALUES(1,1);
CREATE TABLE evidence_exports (
	id INTEGER NOT NULL, 
	created_at FLOAT NOT NULL, 
	created_by VARCHAR(64) NOT NULL, 
	communes TEXT NOT NULL, 
	events TEXT NOT NULL, 
	reason TEXT NOT NULL, 
	filename VARCHAR(128) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	size INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "evidence_exports" VALUES(1,1.79620091865960049629e+09,'ca-daron','da-ron','1','vụ việc 12','bang-chung-1-20261202-154158.zip','1e11389ab6bf0292d055c76c12a2f1bf13253b7004f3237218252ef22b7b6c40',2869);
CREATE TABLE login_failures (
	id INTEGER NOT NULL, 
	at FLOAT NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	ip VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "login_failures" VALUES(1,1.79620091902333211902e+09,'ca-daron','10.0.0.9');
CREATE TABLE maintenance_windows (
	id INTEGER NOT NULL, 
	target_kind VARCHAR(16) NOT NULL, 
	target VARCHAR(64) NOT NULL, 
	starts_at FLOAT NOT NULL, 
	ends_at FLOAT, 
	weekdays VARCHAR(16) NOT NULL, 
	local_start VARCHAR(5) NOT NULL, 
	duration_s FLOAT NOT NULL, 
	tz VARCHAR(64) NOT NULL, 
	comment TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "maintenance_windows" VALUES(1,'node','lx-ap-01',1790000000.0,NULL,'1,3','02:00',3600.0,'Asia/Ho_Chi_Minh','');
CREATE TABLE node_sessions (
	node VARCHAR(64) NOT NULL, 
	session VARCHAR(32) NOT NULL, 
	first_seq INTEGER NOT NULL, 
	max_seq INTEGER NOT NULL, 
	received INTEGER NOT NULL, 
	first_seen FLOAT NOT NULL, 
	PRIMARY KEY (node, session)
);
INSERT INTO "node_sessions" VALUES('dr-ap-01','a1b2c3d4',1,43,41,1790000000.0);
CREATE TABLE nodes (
	node VARCHAR(64) NOT NULL, 
	commune VARCHAR(64) NOT NULL, 
	known INTEGER NOT NULL, 
	status VARCHAR(16), 
	status_ts FLOAT, 
	status_reason VARCHAR(16), 
	agent_version VARCHAR(64), 
	session VARCHAR(32), 
	last_seq INTEGER, 
	last_msg_ts FLOAT, 
	last_seen FLOAT, 
	messages INTEGER NOT NULL, 
	dead_letters INTEGER NOT NULL, 
	rate_limited INTEGER DEFAULT '0' NOT NULL, 
	PRIMARY KEY (node)
);
INSERT INTO "nodes" VALUES('dr-ap-01','da-ron',1,'online',1790000000.0,'birth','0.1.0','a1b2c3d4',43,1790000059.0,1790000060.0,41,0,0);
INSERT INTO "nodes" VALUES('dr-cam-01','da-ron',1,NULL,NULL,NULL,NULL,NULL,NULL,1790000019.0,1790000020.0,7,0,0);
CREATE TABLE notice_outbox (
	id INTEGER NOT NULL, 
	channel VARCHAR(64) NOT NULL, 
	alert_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	payload TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	next_at FLOAT NOT NULL, 
	attempts INTEGER NOT NULL, 
	state VARCHAR(8) NOT NULL, 
	done_at FLOAT, 
	last_error TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "notice_outbox" VALUES(1,'webhook',1,'open','{"kind": "open", "alert_id": 1, "key": "node:dr-ap-02", "scope": "node", "subject": "dr-ap-02", "commune": "da-ron", "cause": "silent", "severity": "critical", "started_at": 1790000000.0, "at": 1790000200.0, "duration_s": 0.0, "flaps": 0, "down": 0, "total": 0, "problem": "", "members": [], "detail": ""}',1790000200.0,1790000200.0,0,'pending',NULL,'');
CREATE TABLE reports (
	id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	period VARCHAR(32) NOT NULL, 
	commune VARCHAR(64) NOT NULL, 
	first VARCHAR(10) NOT NULL, 
	last VARCHAR(10) NOT NULL, 
	origin VARCHAR(16) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	holder VARCHAR(128) NOT NULL, 
	claimed_at FLOAT NOT NULL, 
	done_at FLOAT, 
	files TEXT NOT NULL, 
	error TEXT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_reports_kind_period_commune UNIQUE (kind, period, commune)
);
INSERT INTO "reports" VALUES(1,'wifi','2026-08','','2026-08-01','2026-08-31','monthly','failed','w1',1.79620091903541541098e+09,NULL,'[]','InfluxDB unreachable');
CREATE TABLE snapshots (
	sha256 VARCHAR(64) NOT NULL, 
	node VARCHAR(64) NOT NULL, 
	event_id VARCHAR(64) NOT NULL, 
	size INTEGER NOT NULL, 
	received_at FLOAT NOT NULL, 
	PRIMARY KEY (sha256)
);
INSERT INTO "snapshots" VALUES('8cc6d88fd9b59e5e70d72cfb6b93e8cd88b895f1dd682265059d85d90dd55190','dr-cam-01','ev-release-1',24,1790000014.0);
CREATE TABLE user_sessions (
	id VARCHAR(64) NOT NULL, 
	user_id INTEGER NOT NULL, 
	csrf VARCHAR(64) NOT NULL, 
	created_at FLOAT NOT NULL, 
	expires_at FLOAT NOT NULL, 
	last_seen FLOAT NOT NULL, 
	ip VARCHAR(64) NOT NULL, 
	user_agent VARCHAR(256) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);
INSERT INTO "user_sessions" VALUES('a8ebf473fdf71e891b3c045657af20ef25cc38f16084b98a92dd16f88b3c88d7',1,'KGd86Yiz6h7d5zL7Gjb61BOiG-pualhSkxl_mXuDKmE',1.79620091891772985454e+09,1.79624411891772985455e+09,1.79620091891772985454e+09,'127.0.0.1','release-browser');
CREATE TABLE users (
	id INTEGER NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	display_name VARCHAR(128) NOT NULL, 
	roles VARCHAR(128) NOT NULL, 
	communes TEXT NOT NULL, 
	password_hash TEXT NOT NULL, 
	disabled INTEGER DEFAULT '0' NOT NULL, 
	lang VARCHAR(8) DEFAULT 'vi' NOT NULL, 
	created_at FLOAT NOT NULL, 
	password_changed_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (username)
);
INSERT INTO "users" VALUES(1,'admin','Quản trị','admin','','$argon2id$v=19$m=65536,t=3,p=4$41/dxNJTVqiL6zkf3fWEBA$4HIDPcKHhEgdLj5Jw3DnxuPKwPKOFzYuHRuXU/1Bzm8',0,'vi',1.79620091869463658325e+09,1.79620091869463658325e+09);
INSERT INTO "users" VALUES(2,'ca-daron','ca-daron','police','da-ron','$argon2id$v=19$m=65536,t=3,p=4$x46vhcUrT5lEdkW5OyR3Kg$JZTcWXT0ijgPPRq27raXWGhq50DWtuYX+sjLFnDAc6M',0,'vi',1.79620091881548500059e+09,1.79620091881548500059e+09);
CREATE INDEX ix_dead_letters_received_at ON dead_letters (received_at);
CREATE INDEX ix_dead_letters_node_guess ON dead_letters (node_guess);
CREATE INDEX ix_events_device_start ON events (device, start);
CREATE INDEX ix_events_commune_start ON events (commune, start);
CREATE INDEX ix_events_start ON events (start);
CREATE UNIQUE INDEX ux_events_device_event ON events (device, event_id);
CREATE INDEX ix_event_notes_event ON event_notes (event);
CREATE INDEX ix_alerts_commune ON alerts (commune);
CREATE UNIQUE INDEX ux_alerts_active_key ON alerts (active_key);
CREATE INDEX ix_alerts_key ON alerts ("key");
CREATE INDEX ix_notice_outbox_alert_id ON notice_outbox (alert_id);
CREATE INDEX ix_notice_outbox_queue ON notice_outbox (state, channel, id);
CREATE INDEX ix_login_failures_at ON login_failures (at);
CREATE INDEX ix_login_failures_ip ON login_failures (ip);
CREATE INDEX ix_login_failures_username ON login_failures (username);
CREATE INDEX ix_user_sessions_user_id ON user_sessions (user_id);
CREATE INDEX ix_api_tokens_user_id ON api_tokens (user_id);
CREATE INDEX ix_audit_log_at ON audit_log (at);
CREATE INDEX ix_audit_log_action ON audit_log (action);
CREATE INDEX ix_audit_log_actor ON audit_log (actor);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
COMMIT;
