"""What code sessions do for well-behaved code, in every backend that starts here."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Awaitable, Callable

import pytest

from threadline.sandbox import CodeSession, InvalidFileName, sanitize_file_name

SessionFactory = Callable[..., Awaitable[CodeSession]]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, its CRC checked."""
    assert data.startswith(PNG_SIGNATURE)
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    return width, height


async def test_print_goes_to_logs(session: CodeSession) -> None:
    result = await session.execute("print('hello'); import sys; print('oops', file=sys.stderr)")
    assert result.logs == "hello\noops\n"
    assert result.error is None
    assert not result.timed_out
    assert not result.restarted


async def test_last_expression_is_shown_as_in_a_notebook(session: CodeSession) -> None:
    result = await session.execute("x = 6\nx * 7")
    assert result.logs == "42\n"


async def test_child_process_output_is_captured(session: CodeSession) -> None:
    result = await session.execute("import subprocess; subprocess.run(['echo', 'from child'])")
    assert "from child\n" in result.logs


async def test_exception_is_a_result_with_the_traceback(session: CodeSession) -> None:
    code = "def f():\n    raise ValueError('boom')\nprint('before')\nf()"
    result = await session.execute(code)
    assert result.logs == "before\n"
    assert result.error is not None
    assert result.error.startswith("Traceback (most recent call last):")
    assert "line 2, in f" in result.error
    assert "raise ValueError('boom')" in result.error
    assert result.error.rstrip().endswith("ValueError: boom")
    assert "driver.py" not in result.error
    after = await session.execute("print('still here')")
    assert after.logs == "still here\n"
    assert not after.restarted


async def test_syntax_error_is_a_result(session: CodeSession) -> None:
    result = await session.execute("def (:")
    assert result.error is not None
    assert "SyntaxError" in result.error


async def test_state_survives_between_executions(session: CodeSession) -> None:
    await session.execute("counter = 41\nimport math")
    result = await session.execute("counter += 1\nprint(counter, math.sqrt(16))")
    assert result.logs == "42 4.0\n"


async def test_csv_put_in_and_read_with_pandas(session: CodeSession) -> None:
    path = await session.put_file("sales.csv", b"region,amount\nnorth,10\nsouth,32\nnorth,5\n")
    assert path == "/mnt/data/sales.csv"
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/sales.csv')\n"
        "print(df.groupby('region')['amount'].sum().to_dict())"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    assert result.logs == "{'north': 15, 'south': 32}\n"
    assert result.files == []  # the upload is not an output


async def test_file_names_are_sanitised_against_traversal(session: CodeSession) -> None:
    assert await session.put_file("../../etc/passwd", b"x") == "/mnt/data/passwd"
    assert await session.put_file("C:\\Users\\me\\report.txt", b"y") == "/mnt/data/report.txt"
    result = await session.execute("import os; print(sorted(os.listdir('/mnt/data')))")
    assert result.logs == "['passwd', 'report.txt']\n"
    for bad in ("..", "a/..", "", "\x00", "dir/"):
        with pytest.raises(InvalidFileName):
            sanitize_file_name(bad)


async def test_files_written_are_listed_with_their_bytes(session: CodeSession) -> None:
    await session.put_file("input.txt", b"unchanged")
    code = (
        "open('/mnt/data/out.txt', 'w').write('result: 42')\n"
        "import os; os.makedirs('/mnt/data/sub', exist_ok=True)\n"
        "open('/mnt/data/sub/deep.bin', 'wb').write(bytes(range(256)))\n"
        "open('/tmp/scratch.txt', 'w').write('not an output')"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    files = {f.name: f for f in result.files}
    assert set(files) == {"out.txt", "sub/deep.bin"}
    assert files["out.txt"].data == b"result: 42"
    assert files["out.txt"].path == "/mnt/data/out.txt"
    assert files["sub/deep.bin"].data == bytes(range(256))
    again = await session.execute("print('nothing new')")
    assert again.files == []
    changed = await session.execute("open('/mnt/data/out.txt', 'a').write('!')")
    assert [(f.name, f.data) for f in changed.files] == [("out.txt", b"result: 42!")]


async def test_large_output_file_is_listed_without_bytes(new_session: SessionFactory) -> None:
    session = await new_session(max_file_bytes=1024)
    result = await session.execute("open('big.bin', 'wb').write(b'x' * 4096)")
    assert [(f.name, f.size, f.data) for f in result.files] == [("big.bin", 4096, None)]


async def test_matplotlib_figures_come_back_as_png(session: CodeSession) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\n"
        "plt.show()\n"
        "plt.figure(figsize=(2, 2), dpi=50)\n"
        "plt.bar(['a', 'b'], [1, 2])\n"
        "plt.savefig('/mnt/data/bars.png')\n"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    # the shown figure, then the one left open at the end
    assert [png_size(image) for image in result.images] == [(200, 150), (100, 100)]
    assert [f.name for f in result.files] == ["bars.png"]
    assert result.files[0].data is not None
    assert png_size(result.files[0].data) == (100, 100)
    quiet = await session.execute("print('no figure')")
    assert quiet.images == []


async def test_numpy_works(session: CodeSession) -> None:
    result = await session.execute("import numpy as np; print(int(np.arange(10).sum()))")
    assert result.logs == "45\n"


async def test_timeout_ends_the_session_and_the_next_execution_restarts(
    session: CodeSession,
) -> None:
    await session.execute("kept = 1")
    result = await session.execute("while True:\n    pass", time_limit=2)
    assert result.timed_out
    assert result.error is not None
    assert "2 seconds" in result.error
    after = await session.execute("print('kept' in globals())")
    assert after.restarted
    assert after.logs == "False\n"
    assert not after.timed_out
    once_more = await session.execute("print(1)")
    assert not once_more.restarted


async def test_exit_in_user_code_is_a_result(session: CodeSession) -> None:
    result = await session.execute("import sys; sys.exit(3)")
    assert result.error is not None
    assert "SystemExit: 3" in result.error
    assert (await session.execute("print('alive')")).logs == "alive\n"


async def test_put_file_bytes_are_exact(session: CodeSession) -> None:
    payload = bytes(range(256)) * 1000
    await session.put_file("blob.bin", payload)
    result = await session.execute(
        "import hashlib; print(hashlib.sha256(open('blob.bin', 'rb').read()).hexdigest())"
    )
    assert result.logs == hashlib.sha256(payload).hexdigest() + "\n"
