"""A loopback RTSP server for the camera tests (gst-rtsp-server; run by the SYSTEM python3).

    /usr/bin/python3 rtsp_server.py PORT MOUNT=SOURCE [MOUNT=SOURCE ...]

SOURCE is a video file (decoded and re-encoded as H.264, each client from frame 1, its own
media so a finished client never blocks the next) or ``frozen`` (a still picture at 10 fps:
frames arrive, the image never changes). Prints ``ready`` once it listens.
"""

import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# CIOT_RTSP_PRESET=veryfast gives CABAC-coded H.264 like a camera's (dearer to decode than
# ultrafast's CAVLC; the server needs more CPU to keep up).
PRESET = os.environ.get("CIOT_RTSP_PRESET", "ultrafast")
ENCODE = f"x264enc tune=zerolatency speed-preset={PRESET} key-int-max=10 ! rtph264pay name=pay0 pt=96"


def launch(source: str) -> str:
    if source == "frozen":
        return (
            "( videotestsrc pattern=colors is-live=true ! video/x-raw,width=320,height=240,framerate=10/1"
            f" ! videoconvert ! {ENCODE} )"
        )
    return f"( filesrc location={source} ! decodebin ! videoconvert ! {ENCODE} )"


def main() -> None:
    Gst.init(None)
    port = sys.argv[1]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    mounts = server.get_mount_points()
    for spec in sys.argv[2:]:
        mount, _, source = spec.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch(source))
        factory.set_shared(False)
        mounts.add_factory("/" + mount, factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
