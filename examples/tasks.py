"""The seed README's tasks, as a runnable module: `render-workflows dev tasks:app`."""

from render_sdk import Retry, Workflows

app = Workflows(default_retry=Retry(max_retries=2, wait_duration_ms=200))


@app.task
def square(a: int) -> int:
    """Square a number."""
    return a * a


@app.task
async def add_squares(a: int, b: int) -> int:
    """Add the squares of two numbers."""
    result1 = await square(a)
    result2 = await square(b)
    return result1 + result2


if __name__ == "__main__":
    app.start()
