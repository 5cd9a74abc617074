"""The five dashboards technicians open, declared panel by panel.

Titles are Vietnamese (the technicians' language); each description adds the English and
says what the panel answers. Every query filters by the dashboard's variables with
``=~ /^$var$/`` (Grafana renders a multi-value or "All" selection as a regex alternation)
and every time series groups by ``time($__interval)`` so the panel stays light over a month.
"""

from __future__ import annotations

from commune_iot.grafana.model import Annotation, Dashboard, Panel, Query, Variable, state_mappings

IN_COMMUNE = '"commune" =~ /^$commune$/ AND "site" =~ /^$site$/'

OUTAGES = Annotation(
    "Sự cố mất kết nối (outages)",
    'SELECT "text", "end_ms" FROM "rollups"."outage" WHERE $timeFilter AND "commune" =~ /^$commune$/',
)

UP_DOWN = state_mappings({"true": ("Hoạt động", "green"), "false": ("Mất", "red")})
FROZEN = state_mappings({"true": ("Đứng hình", "orange"), "false": ("Bình thường", "green")})
DEVICE_STATE = state_mappings(
    {
        "0": ("Trực tuyến", "green"),
        "1": ("Hỏng", "red"),
        "2": ("Không rõ (bo mạch mất kết nối)", "gray"),
        "up": ("Trực tuyến", "green"),
        "down": ("Hỏng", "red"),
        "unknown": ("Không rõ (bo mạch mất kết nối)", "gray"),
    }
)


def _vars(measurement: str, var: str, label: str, tag: str = "device") -> tuple[Variable, ...]:
    return (
        Variable("commune", "Xã (commune)", f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "commune"'),
        Variable(
            "site",
            "Điểm (site)",
            f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "site" WHERE "commune" =~ /^$commune$/',
        ),
        Variable(
            var,
            label,
            f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{tag}" WHERE {IN_COMMUNE}',
        ),
    )


def _series(measurement: str, expr: str, where: str, by: str = "device") -> Query:
    return Query(
        f'SELECT {expr} FROM "{measurement}" WHERE $timeFilter AND {where} '
        f'GROUP BY time($__interval), "{by}" fill(null)',
        alias=f"$tag_{by}",
    )


def _count_state(code: int) -> Query:
    return Query(
        'SELECT count("state_code") FROM (SELECT last("state_code") AS "state_code" FROM "device_state" '
        f'WHERE $timeFilter AND {IN_COMMUNE} GROUP BY "device") WHERE "state_code" = {code}'
    )


def fleet() -> Dashboard:
    mine = f'{IN_COMMUNE} AND "device" =~ /^$device$/'
    return Dashboard(
        uid="ciot-fleet",
        title="Tổng quan thiết bị",
        description="59 thiết bị theo xã: trạng thái, lần cuối liên lạc, cảnh báo, tỷ lệ hoạt động. "
        "Fleet overview: every device by commune with state, last seen, open alerts, availability.",
        variables=(
            Variable("commune", "Xã (commune)", 'SHOW TAG VALUES FROM "device_state" WITH KEY = "commune"'),
            Variable(
                "site",
                "Điểm (site)",
                'SHOW TAG VALUES FROM "device_state" WITH KEY = "site" WHERE "commune" =~ /^$commune$/',
            ),
            Variable(
                "device",
                "Thiết bị (device)",
                f'SHOW TAG VALUES FROM "device_state" WITH KEY = "device" WHERE {IN_COMMUNE}',
            ),
        ),
        annotations=(OUTAGES,),
        panels=(
            Panel(
                "Trực tuyến",
                "stat",
                (_count_state(0),),
                description="Số thiết bị đang hoạt động. Devices up now.",
                width=6,
                height=4,
                thresholds=((None, "green"),),
            ),
            Panel(
                "Hỏng",
                "stat",
                (_count_state(1),),
                description="Thiết bị báo lỗi (mất luồng hình, AP không phản hồi). Devices down.",
                width=6,
                height=4,
                thresholds=((None, "green"), (1, "red")),
                expect_data=False,
            ),
            Panel(
                "Không rõ",
                "stat",
                (_count_state(2),),
                description="Thiết bị sau bo mạch mất kết nối: không biết tình trạng, không cảnh báo riêng. "
                "Unknown: behind an offline board (no alert of their own).",
                width=6,
                height=4,
                thresholds=((None, "green"), (1, "orange")),
                expect_data=False,
            ),
            Panel(
                "Cảnh báo đang mở",
                "stat",
                (
                    Query(
                        'SELECT sum("open_alerts") FROM (SELECT last("open_alerts") AS "open_alerts" '
                        f'FROM "device_state" WHERE $timeFilter AND {IN_COMMUNE} GROUP BY "device")'
                    ),
                ),
                description="Số cảnh báo đang mở liên quan đến các thiết bị đã chọn. Open alerts.",
                width=6,
                height=4,
                thresholds=((None, "green"), (1, "red")),
            ),
            Panel(
                "Trạng thái từng thiết bị",
                "table",
                (
                    Query(
                        'SELECT last("state") AS "Trạng thái", last("open_alerts") AS "Cảnh báo", '
                        'last("last_seen_ms") AS "Liên lạc lần cuối", '
                        '100 * mean("available") AS "Hoạt động %" '
                        f'FROM "device_state" WHERE $timeFilter AND {mine} '
                        'GROUP BY "commune", "site", "kind", "device"',
                        table=True,
                    ),
                ),
                description="Mỗi thiết bị: trạng thái hiện tại, cảnh báo, lần cuối liên lạc, tỷ lệ hoạt động "
                "trong khoảng thời gian đã chọn. Per device: state, open alerts, last seen, availability %.",
                width=24,
                height=12,
                mappings=DEVICE_STATE,
            ),
            Panel(
                "Lịch sử trạng thái",
                "state-timeline",
                (_series("device_state", 'last("state_code")', mine),),
                description="Trạng thái theo thời gian: xanh hoạt động, đỏ hỏng, xám không rõ. "
                "State over time.",
                width=24,
                height=10,
                mappings=DEVICE_STATE,
            ),
            Panel(
                "Tỷ lệ hoạt động theo xã",
                "bargauge",
                (
                    Query(
                        'SELECT 100 * mean("available") FROM "device_state" '
                        f'WHERE $timeFilter AND {IN_COMMUNE} GROUP BY "commune"',
                        alias="$tag_commune",
                    ),
                ),
                description="Tỷ lệ thời gian thiết bị hoạt động, theo xã. Availability % by commune.",
                width=12,
                unit="percent",
                min=0,
                max=100,
                thresholds=((None, "red"), (95, "orange"), (99, "green")),
            ),
            Panel(
                "Sự cố theo nguyên nhân",
                "barchart",
                (
                    Query(
                        'SELECT count("duration_s") FROM "rollups"."outage" WHERE $timeFilter '
                        'AND "commune" =~ /^$commune$/ GROUP BY "cause"',
                        alias="$tag_cause",
                        table=True,
                    ),
                ),
                description="Số sự cố theo nguyên nhân (mất điện/cáp, mất kết nối, chập chờn, mất đường "
                "truyền xã, lỗi thiết bị). Outages by cause.",
                width=12,
            ),
        ),
    )


def cameras() -> Dashboard:
    mine = f'{IN_COMMUNE} AND "device" =~ /^$camera$/'
    boards = f"{IN_COMMUNE} AND \"kind\" = 'camera'"
    return Dashboard(
        uid="ciot-cameras",
        title="Sức khỏe camera",
        description="24 camera: luồng hình, tốc độ khung hình, đứng hình, lỗi giải mã, sự kiện chuyển động, "
        "bo mạch. Camera health: stream, fps, frozen picture, decode errors, motion, board.",
        variables=_vars("camera", "camera", "Camera"),
        annotations=(OUTAGES,),
        panels=(
            Panel(
                "Luồng hình",
                "state-timeline",
                (_series("camera", 'last("up")', mine),),
                description="Camera có gửi hình không. Stream up (true) or down.",
                width=24,
                mappings=UP_DOWN,
            ),
            Panel(
                "Tốc độ khung hình (fps)",
                "timeseries",
                (_series("camera", 'mean("fps")', mine),),
                description="Số khung hình mỗi giây nhận được. Measured frames per second.",
                unit="fps",
            ),
            Panel(
                "Đứng hình",
                "state-timeline",
                (_series("camera", 'last("frozen")', mine),),
                description="Luồng vẫn chạy nhưng hình không đổi (lỗi camera). Frozen picture flag.",
                mappings=FROZEN,
            ),
            Panel(
                "Lỗi giải mã",
                "timeseries",
                (_series("camera", 'non_negative_difference(max("decode_errors"))', mine),),
                description="Số khung hình lỗi trong mỗi khoảng. Decode errors per interval.",
                custom={"drawStyle": "bars", "fillOpacity": 60},
            ),
            Panel(
                "Sự kiện chuyển động mỗi giờ",
                "timeseries",
                (
                    Query(
                        f'SELECT count("peak_area_pct") FROM "motion" WHERE $timeFilter AND {mine} '
                        "GROUP BY time(1h), \"device\" fill(0) tz('Asia/Ho_Chi_Minh')",
                        alias="$tag_device",
                    ),
                ),
                description="Số sự kiện chuyển động theo giờ (giờ Việt Nam): giờ nào đông người. "
                "Motion events per hour, local time.",
                custom={"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}},
            ),
            Panel(
                "Giờ nào có chuyển động",
                "heatmap",
                (
                    Query(
                        f'SELECT count("peak_area_pct") FROM "motion" WHERE $timeFilter AND {mine} '
                        "GROUP BY time(1d), \"hour\" fill(0) tz('Asia/Ho_Chi_Minh')",
                        alias="$tag_hour",
                    ),
                ),
                description="Sự kiện chuyển động theo giờ trong ngày (dọc, giờ Việt Nam) và theo ngày "
                "(ngang): màu đậm là giờ đông người. Motion events by hour of day (rows) and day (columns).",
                width=24,
                height=9,
                options={
                    "calculate": False,
                    "rowsFrame": {"layout": "auto"},
                    "yAxis": {"axisPlacement": "left", "reverse": False},
                    "color": {
                        "mode": "scheme",
                        "scheme": "Oranges",
                        "scale": "exponential",
                        "exponent": 0.5,
                        "steps": 64,
                        "fill": "dark-orange",
                    },
                    "cellGap": 1,
                    "showValue": "never",
                    "tooltip": {"mode": "single", "yHistogram": False},
                    "legend": {"show": True},
                },
            ),
            Panel(
                "CPU bo mạch",
                "timeseries",
                (_series("health", 'mean("cpu_pct")', boards, by="node"),),
                description="Tải CPU của bo mạch cạnh camera. Board CPU %.",
                unit="percent",
                width=6,
            ),
            Panel(
                "Nhiệt độ bo mạch",
                "timeseries",
                (_series("health", 'mean("temp_c")', boards, by="node"),),
                description="Nhiệt độ SoC; trên 80 °C bo mạch tự giảm tốc. Board temperature.",
                unit="celsius",
                width=6,
                thresholds=((None, "green"), (70, "orange"), (80, "red")),
                expect_data=False,
            ),
            Panel(
                "Ổ đĩa bo mạch",
                "timeseries",
                (_series("health", 'mean("disk_used_pct")', boards, by="node"),),
                description="Dung lượng thẻ nhớ đã dùng. Board disk used %.",
                unit="percent",
                width=6,
            ),
            Panel(
                "Hàng đợi chưa gửi",
                "timeseries",
                (_series("health", 'max("outbox_depth")', boards, by="node"),),
                description="Tin nhắn chờ gửi khi mất đường truyền. Outbox depth (unsent messages).",
                width=6,
            ),
        ),
    )


def access_points() -> Dashboard:
    mine = f'{IN_COMMUNE} AND "device" =~ /^$ap$/'
    return Dashboard(
        uid="ciot-aps",
        title="Điểm phát Wi-Fi",
        description="35 điểm phát Wi-Fi ở nhà văn hóa thôn: số người dùng, băng tần, SSID, lưu lượng, "
        "thời gian hoạt động, khả năng truy cập SNMP. Access points: clients, bands, SSIDs, traffic, "
        "uptime and reboots, SNMP reachability.",
        variables=_vars("ap", "ap", "Điểm phát (AP)"),
        annotations=(OUTAGES,),
        panels=(
            Panel(
                "Số người dùng theo điểm phát",
                "timeseries",
                (_series("ap", 'mean("clients")', mine),),
                description="Thiết bị Wi-Fi đang kết nối. Connected Wi-Fi clients per AP.",
                width=24,
                decimals=0,
            ),
            Panel(
                "Người dùng theo băng tần",
                "timeseries",
                (_series("ap_radio", 'mean("clients")', mine, by="band"),),
                description="2,4 GHz / 5 GHz, khi thiết bị cho biết. Clients per band, where known.",
                custom={"stacking": {"mode": "normal"}, "fillOpacity": 30},
                decimals=0,
            ),
            Panel(
                "Người dùng theo SSID",
                "timeseries",
                (_series("ap_ssid", 'mean("clients")', mine, by="ssid"),),
                description="Theo tên mạng, khi thiết bị cho biết. Clients per SSID, where known.",
                custom={"stacking": {"mode": "normal"}, "fillOpacity": 30},
                decimals=0,
            ),
            Panel(
                "Lưu lượng vào",
                "timeseries",
                (_series("ap_if", 'mean("in_bps")', mine),),
                description="Tốc độ tải về qua cổng WAN. Inbound traffic.",
                unit="bps",
            ),
            Panel(
                "Lưu lượng ra",
                "timeseries",
                (_series("ap_if", 'mean("out_bps")', mine),),
                description="Tốc độ tải lên qua cổng WAN. Outbound traffic.",
                unit="bps",
            ),
            Panel(
                "Thời gian hoạt động",
                "timeseries",
                (_series("ap", 'last("uptime_s")', mine),),
                description="Từ lần khởi động lại gần nhất; đường rơi về 0 là khởi động lại. "
                "Uptime; a drop to zero is a reboot.",
                unit="s",
            ),
            Panel(
                "Số lần khởi động lại",
                "table",
                (
                    Query(
                        'SELECT count("d") AS "Khởi động lại" FROM (SELECT difference("uptime_s") AS "d" '
                        f'FROM "ap" WHERE $timeFilter AND {mine} GROUP BY "device") WHERE "d" < 0 '
                        'GROUP BY "device"',
                        table=True,
                    ),
                ),
                description="Số lần điểm phát khởi động lại trong khoảng đã chọn. Reboots in the range.",
                expect_data=False,
            ),
            Panel(
                "Truy cập SNMP",
                "state-timeline",
                (_series("ap", 'last("reachable")', mine),),
                description="Điểm phát có trả lời SNMP không. SNMP reachability.",
                mappings=UP_DOWN,
            ),
        ),
    )


def boards() -> Dashboard:
    mine = f'{IN_COMMUNE} AND "node" =~ /^$node$/'
    return Dashboard(
        uid="ciot-boards",
        title="Bo mạch biên",
        description="Các bo mạch cạnh camera và điểm phát: CPU, bộ nhớ, nhiệt độ, lệch đồng hồ, hàng đợi, "
        "tin gửi lại, tin bị bỏ. Edge boards: CPU, memory, temperature, clock skew, outbox, replays, drops.",
        variables=_vars("health", "node", "Bo mạch (node)", tag="node"),
        annotations=(OUTAGES,),
        panels=(
            Panel(
                "CPU",
                "timeseries",
                (_series("health", 'mean("cpu_pct")', mine, by="node"),),
                description="Board CPU %.",
                unit="percent",
                width=8,
            ),
            Panel(
                "Bộ nhớ",
                "timeseries",
                (_series("health", 'mean("mem_used_pct")', mine, by="node"),),
                description="Board memory used %.",
                unit="percent",
                width=8,
            ),
            Panel(
                "Nhiệt độ",
                "timeseries",
                (_series("health", 'mean("temp_c")', mine, by="node"),),
                description="Board temperature (where the board has a sensor).",
                unit="celsius",
                width=8,
                expect_data=False,
            ),
            Panel(
                "Lệch đồng hồ",
                "timeseries",
                (_series("health", 'mean("clock_skew_s")', mine, by="node"),),
                description="Đồng hồ bo mạch trừ giờ máy chủ (gồm cả độ trễ mạng). Board clock minus cloud "
                "time, network delay included; large values mean NTP is not working.",
                unit="s",
            ),
            Panel(
                "Hàng đợi chưa gửi",
                "timeseries",
                (_series("health", 'max("outbox_depth")', mine, by="node"),),
                description="Outbox depth: messages kept on the board while the uplink is down.",
            ),
            Panel(
                "Tin gửi lại và tin trực tiếp",
                "timeseries",
                (
                    Query(
                        f'SELECT count("seq") FROM "health" WHERE $timeFilter AND {mine} '
                        'AND "replay" = false '
                        "GROUP BY time($__interval) fill(0)",
                        alias="Trực tiếp (live)",
                    ),
                    Query(
                        f'SELECT count("seq") FROM "health" WHERE $timeFilter AND {mine} '
                        'AND "replay" = true '
                        "GROUP BY time($__interval) fill(0)",
                        alias="Gửi lại (replayed)",
                    ),
                ),
                description="Tin nhắn tình trạng gửi ngay và gửi lại sau khi mất đường truyền. "
                "Health messages live vs replayed from the outbox.",
                custom={"drawStyle": "bars", "stacking": {"mode": "normal"}, "fillOpacity": 60},
            ),
            Panel(
                "Tin bị bỏ",
                "timeseries",
                (_series("health", 'non_negative_difference(max("outbox_dropped"))', mine, by="node"),),
                description="Tin bị bỏ vì hàng đợi đầy (mất đường truyền quá lâu). Messages dropped by a "
                "full outbox.",
                custom={"drawStyle": "bars", "fillOpacity": 60},
            ),
        ),
    )


def cloud() -> Dashboard:
    mine = '"worker" =~ /^$worker$/'
    return Dashboard(
        uid="ciot-cloud",
        title="Dịch vụ đám mây",
        description="Máy chủ nhận dữ liệu: tốc độ nhận, tin không hợp lệ, độ trễ ghi InfluxDB, hàng đợi, "
        "thông báo đã gửi và lỗi. Cloud service: ingest rate, invalid messages, write latency, spool, "
        "notifications.",
        variables=(
            Variable("worker", "Tiến trình (worker)", 'SHOW TAG VALUES FROM "cloud" WITH KEY = "worker"'),
        ),
        panels=(
            Panel(
                "Tốc độ nhận",
                "timeseries",
                (_series("cloud", 'non_negative_derivative(max("received"), 1s)', mine, by="worker"),),
                description="Tin MQTT nhận mỗi giây. MQTT messages received per second.",
                unit="msg/s",
            ),
            Panel(
                "Tin không hợp lệ",
                "timeseries",
                (_series("cloud", 'non_negative_difference(max("dead_lettered"))', mine, by="worker"),),
                description="Tin bị từ chối (sai định dạng), xem /api/v1/dead-letters. Invalid messages.",
                custom={"drawStyle": "bars", "fillOpacity": 60},
            ),
            Panel(
                "Độ trễ ghi InfluxDB",
                "timeseries",
                (_series("cloud", 'mean("write_latency_s")', mine, by="worker"),),
                description="Thời gian trung bình một lần ghi. Mean InfluxDB /write latency.",
                unit="s",
            ),
            Panel(
                "Hàng đợi ghi (spool)",
                "timeseries",
                (_series("cloud", 'max("spool_lines")', mine, by="worker"),),
                description="Dòng dữ liệu chờ ghi vào InfluxDB (tăng khi InfluxDB ngừng). Journal backlog.",
            ),
            Panel(
                "Thông báo đã gửi",
                "timeseries",
                (_series("cloud", 'non_negative_difference(max("notify_sent"))', mine, by="worker"),),
                description="Cảnh báo gửi tới kỹ thuật viên. Notices sent to people.",
                custom={"drawStyle": "bars", "fillOpacity": 60},
                expect_data=False,
            ),
            Panel(
                "Thông báo lỗi",
                "timeseries",
                (
                    _series(
                        "cloud", 'non_negative_difference(max("notify_failed_attempts"))', mine, by="worker"
                    ),
                    _series("cloud", 'non_negative_difference(max("notify_given_up"))', mine, by="worker"),
                ),
                description="Lần gửi lỗi (sẽ thử lại) và thông báo bỏ cuộc. Failed attempts and notices "
                "given up.",
                custom={"drawStyle": "bars", "fillOpacity": 60},
                expect_data=False,
            ),
            Panel(
                "Kết nối broker",
                "state-timeline",
                (_series("cloud", 'last("broker_connected")', mine, by="worker"),),
                description="Máy chủ có kết nối MQTT broker không. Broker connection.",
                mappings=UP_DOWN,
            ),
        ),
    )


def all_dashboards() -> list[Dashboard]:
    return [fleet(), cameras(), access_points(), boards(), cloud()]
