"""A small Tk program that reports what it receives, as JSON lines in a file.

Run as ``python _tkprobe.py OUT [clip-read | clip-set TEXT]`` on a desktop.
"""

import json
import sys
import tkinter as tk

out = open(sys.argv[1], "a", buffering=1)  # noqa: SIM115 - lives as long as the program


def log(**fields):
    out.write(json.dumps(fields) + "\n")


root = tk.Tk()
root.title("probe")
root.geometry("420x320+60+70")
button = tk.Button(root, text="Press me", command=lambda: log(kind="button"))
button.pack(pady=4)
canvas = tk.Canvas(root, width=400, height=240, bg="white", highlightthickness=0)
canvas.pack()
for sequence, kind in (("<ButtonPress-1>", "press"), ("<B1-Motion>", "motion"), ("<ButtonRelease-1>", "release")):
    canvas.bind(sequence, lambda e, kind=kind: log(kind=kind, x=e.x_root, y=e.y_root))
canvas.bind("<ButtonPress>", lambda e: e.num in (4, 5, 6, 7) and log(kind="wheel", num=e.num), add="+")
canvas.bind("<Double-ButtonPress-1>", lambda e: log(kind="double"))
canvas.bind("<Triple-ButtonPress-1>", lambda e: log(kind="triple"))
# Every button and key, with the modifier state and the server's time (on tags of their own, so
# that they fire besides the canvas's bindings).
root.bind("<ButtonPress>", lambda e: log(kind="down", num=e.num, state=e.state, x=e.x_root, y=e.y_root))
root.bind("<ButtonRelease>", lambda e: log(kind="up", num=e.num, state=e.state))
root.bind_all("<KeyPress>", lambda e: log(kind="key-down", keysym=e.keysym, time=e.time))
root.bind_all("<KeyRelease>", lambda e: log(kind="key-up", keysym=e.keysym, time=e.time))


def ready():
    root.update_idletasks()
    log(
        kind="ready",
        button=[button.winfo_rootx() + button.winfo_width() // 2, button.winfo_rooty() + button.winfo_height() // 2],
        canvas=[canvas.winfo_rootx(), canvas.winfo_rooty(), canvas.winfo_width(), canvas.winfo_height()],
    )
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    if mode == "clip-read":
        try:
            log(kind="clipboard", text=root.clipboard_get(type="UTF8_STRING"))
        except tk.TclError as exc:
            log(kind="clipboard-error", error=str(exc))
    elif mode == "clip-set":
        root.clipboard_clear()
        root.clipboard_append(sys.argv[3])
        log(kind="clipboard-set")


root.after(300, ready)
root.mainloop()
