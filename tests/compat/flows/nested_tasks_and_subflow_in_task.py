"""Tasks calling tasks, and a flow called from inside a task (allowed in Prefect 3)."""

from flowyard import flow, task


@task
def tokenize(text: str) -> list[str]:
    return text.lower().split()


@flow
def count_words(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in tokenize(text):
        counts[word] = counts.get(word, 0) + 1
    return counts


@task
def analyze(document: str) -> dict[str, object]:
    counts = count_words(document)
    top = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return {"words": sum(counts.values()), "top": top[0], "tokens": len(tokenize(document))}


@flow
def corpus(documents: list[str]) -> list[dict[str, object]]:
    return [f.result() for f in [analyze.submit(d) for d in documents]]


if __name__ == "__main__":
    print(corpus(["the cat and the hat", "a b a"]))
