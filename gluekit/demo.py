"""The demo data set: Chinese travel-assistant chats whose answers follow from the prompt.

Deterministic (``random.Random(seed)``): ``python -m gluekit.demo OUT_DIR`` rewrites the shipped
``gluekit/assets/demo/{train,dev}.jsonl`` byte for byte (a test checks it).

Every reply is a fixed function of the conversation so far, so learning is measurable by exact
match: a city's province / dish / sight is a lookup, a tool call copies the city, and the reply
after a tool result copies the weather from the ``observation`` turn. Multi-turn chats ask about
"那里" (there), so the model must find the city in an earlier turn.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

# city: (province or None for a municipality, famous dish, famous sight)
CITIES = {
    "北京": (None, "烤鸭", "故宫"),
    "上海": (None, "小笼包", "外滩"),
    "天津": (None, "煎饼果子", "五大道"),
    "重庆": (None, "火锅", "洪崖洞"),
    "广州": ("广东", "肠粉", "广州塔"),
    "杭州": ("浙江", "西湖醋鱼", "西湖"),
    "成都": ("四川", "担担面", "宽窄巷子"),
    "西安": ("陕西", "肉夹馍", "兵马俑"),
    "武汉": ("湖北", "热干面", "黄鹤楼"),
    "南京": ("江苏", "盐水鸭", "中山陵"),
    "长沙": ("湖南", "臭豆腐", "岳麓山"),
    "昆明": ("云南", "过桥米线", "滇池"),
}
WEATHERS = ("晴", "多云", "小雨", "大雨", "阴", "小雪")
SYSTEMS = ("你是一个旅游助手。", "你是一个乐于助人的导游。", "请简洁地回答用户的问题。")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "查询城市今天的天气",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

ASK_PROVINCE = ("{c}属于哪个省?", "{c}在哪个省份?", "请问{c}是哪个省的城市?")
ASK_FOOD = ("{c}有什么好吃的?", "去{c}应该吃什么?", "{c}的特色美食是什么?")
ASK_SIGHT = ("{c}有什么好玩的地方?", "{c}最有名的景点是哪里?", "去{c}应该去哪里玩?")
ASK_FOOD_THERE = ("那里有什么好吃的?", "那边的特色美食是什么?")
ASK_SIGHT_THERE = ("那里有什么景点?", "那边有什么好玩的?")
ASK_WEATHER = ("{c}今天天气怎么样?", "查一下{c}今天的天气。", "{c}今天会下雨吗?")


def answer_province(city: str) -> str:
    prov = CITIES[city][0]
    return f"{city}是直辖市。" if prov is None else f"{city}属于{prov}省。"


def answer_food(city: str) -> str:
    return f"{city}的特色美食是{CITIES[city][1]}。"


def answer_sight(city: str) -> str:
    return f"{city}最有名的景点是{CITIES[city][2]}。"


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def make_conversation(rng: random.Random) -> dict:
    city = rng.choice(sorted(CITIES))
    # weather (copying from a tool result) is the hardest skill, so it gets two shares in eight
    kind = rng.choice(("province", "food", "sight", "food+sight", "sight+food", "province+food", "weather", "weather"))
    msgs: list[dict] = []
    if kind == "weather":
        weather = rng.choice(WEATHERS)
        msgs.append({"role": "system", "content": "", "tools": [WEATHER_TOOL]})
        msgs.append(_user(rng.choice(ASK_WEATHER).format(c=city)))
        msgs.append(_assistant("get_weather\n" + json.dumps({"city": city}, ensure_ascii=False)))
        msgs.append({"role": "observation", "content": json.dumps({"city": city, "weather": weather}, ensure_ascii=False)})
        msgs.append(_assistant(f"{city}今天{weather}。"))
        return {"messages": msgs}
    if rng.random() < 0.4:
        msgs.append({"role": "system", "content": rng.choice(SYSTEMS)})
    first, *rest = kind.split("+")
    asks = {"province": ASK_PROVINCE, "food": ASK_FOOD, "sight": ASK_SIGHT}
    answers = {"province": answer_province, "food": answer_food, "sight": answer_sight}
    msgs.append(_user(rng.choice(asks[first]).format(c=city)))
    msgs.append(_assistant(answers[first](city)))
    for follow in rest:
        there = {"food": ASK_FOOD_THERE, "sight": ASK_SIGHT_THERE}[follow]
        msgs.append(_user(rng.choice(there)))
        msgs.append(_assistant(answers[follow](city)))
    return {"messages": msgs}


def make_split(n: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    """``n`` distinct conversations; any whose JSON is in ``exclude`` is drawn again."""
    rng = random.Random(seed)
    out, seen = [], set(exclude)
    while len(out) < n:
        conv = make_conversation(rng)
        key = json.dumps(conv, ensure_ascii=False, sort_keys=True)
        if key in seen and len(seen) < 10_000:
            continue
        seen.add(key)
        out.append(conv)
    return out


def write_demo(out_dir: str | Path, n_train: int = 600, n_dev: int = 40) -> dict[str, Path]:
    """Write ``train.jsonl`` and ``dev.jsonl``; dev conversations never appear verbatim in train."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = make_split(n_dev, seed=2024)
    dev_keys = {json.dumps(c, ensure_ascii=False, sort_keys=True) for c in dev}
    train = make_split(n_train, seed=42, exclude=dev_keys)
    paths = {}
    for name, rows in (("train", train), ("dev", dev)):
        path = out_dir / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[name] = path
    return paths


if __name__ == "__main__":
    for name, path in write_demo(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "assets" / "demo").items():
        print(name, path)
