"""Official-shaped SEED-Bench files for tests: the benchmark's DATASET.md examples.

SEED-Bench-2: extensionless CC3M ids, lists of frames, `<img>` interleaving, L3
option images; SEED-Bench-1: raw-video ids whose 8 frames lie in the shipped layout
keyed by question id. Dimension d has 1 + d % 3 questions, so task and
question-weighted averages differ.
"""

import json

from PIL import Image

# The `question_type` maps exactly as the benchmark's DATASET.md prints them.
V2_QUESTION_TYPE = {
    "Scene Understanding": 1, "Instance Identity": 2, "Instance Attributes": 3,
    "Instance Location": 4, "Instances Counting": 5, "Spatial Relation": 6,
    "Instance Interaction": 7, "Visual Reasoning": 8, "Text Understanding": 9,
    "Celebrity Recognition": 10, "Landmark Recognition": 11, "Chart Understanding": 12,
    "Visual Referring Expression": 13, "Science Knowledge": 14, "Emotion Recognition": 15,
    "Visual Mathematics": 16, "Difference Spotting": 17, "Meme Comprehension": 18,
    "Global Video Understanding": 19, "Action Recognition": 20, "Action Prediction": 21,
    "Procedure Understanding": 22, "In-Context Captioning": 23,
    "Interleaved Image-Text Analysis": 24, "Text-to-Image Generation": 25,
    "Next Image Prediction": 26, "Text-Image Creation": 27,
}
V1_QUESTION_TYPE = {**{n: d for n, d in V2_QUESTION_TYPE.items() if d <= 9},
                    "Action Recognition": 10, "Action Prediction": 11,
                    "Procedure Understanding": 12}

SUBPART = {1: "Single-Image & Text Comprehension", 17: "Multiple-Images & Text Comprehension",
           19: "Video & Text Comprehension", 23: "Interleaved Image & Text Comprehension",
           25: "Image Generation", 27: "Image & Text Generation"}
DATA_TYPE = {1: "Single Image", 17: "Multiple Images", 19: "Video", 23: "Interleaved Image",
             25: "Image Generation", 27: "Image & Text Generation"}
LETTERS = "ABCD"


def image(path, colour, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path, format=fmt)


def part_start(dim: int) -> int:
    return max(k for k in SUBPART if k <= dim)


def v2_question(dim: int, k: int, data_id, source: str, question: str, choices) -> dict:
    level = "L1" if dim <= 22 else "L2" if dim <= 24 else "L3"
    return {"answer": LETTERS[(dim + k) % 4], "choice_a": choices[0], "choice_b": choices[1],
            "choice_c": choices[2], "choice_d": choices[3], "data_id": data_id,
            "data_source": source, "data_type": DATA_TYPE[part_start(dim)], "level": level,
            "question": question, "question_id": f"{dim}_{k}", "question_type_id": dim,
            "subpart": SUBPART[part_start(dim)], "version": "v1" if dim <= 9 else "v2"}


def write_v2(root):
    """Every SEED-Bench-2 dimension, shaped as DATASET.md shows it, 1-3 questions each
    (unequal counts, so task and question-weighted averages differ)."""
    cc3m, v2 = root / "cc3m", root / "seed_bench_v2"
    questions = []
    for dim in range(1, 28):
        for k in range(1 + dim % 3):
            colour = (dim * 9 % 256, k * 80, 120)
            if dim <= 9:  # a CC3M image named without extension
                data_id = f"{1454426 + dim}_{2591111986 + k}"
                image(cc3m / data_id, colour, "JPEG")
                q = v2_question(dim, k, data_id, "cc3m", "How many towels are in the image?",
                                ("One", "Two", "Three", "Four"))
            elif dim <= 16:
                data_id = f"task{dim}/images/{k}.png"
                image(v2 / data_id, colour)
                q = v2_question(dim, k, data_id, "SEED-Bench v2", f"Question {dim}?",
                                ("w", "x", "y", "z"))
            elif dim <= 18:
                data_id = [f"task17/SD_image/SD_IMG_{dim}{k}_{i}.png" for i in (1, 2)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "What are the differences between the two images?",
                                ("red car", "no person", "extra tree", "other shirt"))
            elif dim <= 22:
                data_id = [f"task{dim}/Charades_test_frame/WRQ{k}/{i}.png" for i in range(1, 9)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2", "What did the person do?",
                                ("hung a robe", "cut", "placed a can", "hung a shirt"))
            elif dim <= 24:
                data_id = [f"task23/ICL_images/in_context_{dim}_{k}/{i}.jpg" for i in (1, 2, 3)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "<img>: The uniforms are blue. <img>: The outfit is orange. <img>:",
                                ("both look away", "black hair", "a dog", "two people"))
            elif dim == 25:
                data_id = [f"task25/image/{k}/{i}.jpg" for i in (1, 2, 3, 4)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "Which picture below better fits the description: a purse.",
                                ("1.jpg", "2.jpg", "3.jpg", "4.jpg"))
            elif dim == 26:
                frames = [f"v{k}{i}/1.png" for i in range(7)]
                data_id = [f"task26/kitchen_start_end_frame/{f}" for f in frames]
                q = v2_question(dim, k, data_id, "SEED-Bench v2", "What will happen next?",
                                frames[3:])
            else:
                data_id = [f"task27/original/{k}_{i}.jpg" for i in range(4)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "What does the Sydney Opera House look like?",
                                ("white shells", "a skyscraper", "a stadium", "a bridge"))
            for i, rel in enumerate([data_id] if isinstance(data_id, str) else data_id):
                if not (cc3m / rel).exists() and not (v2 / rel).exists():
                    image(v2 / rel, (i * 30, dim * 9 % 256, k * 60),
                          "JPEG" if rel.endswith(".jpg") else "PNG")
            questions.append(q)
    ann = root / "SEED-Bench_v2_level1_2_3.json"
    ann.write_text(json.dumps({"questions": questions, "question_type": V2_QUESTION_TYPE},
                              indent=1))
    return ann, {"cc3m": cc3m, "SEED-Bench v2": v2}


V1_VIDEOS = {10: ("94328.webm", None, "ssv2_8_frame"),
             11: ("P03/P03_24.MP4", [648.0, 658.0], "kitchen_8_frame"),
             12: ("P06/cam01/P06_cereals.avi", [18, 166], "breakfast_8_frame")}


def write_v1(root):
    """SEED-Bench-1 as DATASET.md shows it; video questions name raw videos, and their
    frames lie in the shipped layout task1N/<sub>/<question_id>/1.png..8.png."""
    questions = []
    for dim in range(1, 13):
        for k in range(1 + dim % 3):
            q = {"answer": LETTERS[(dim + k) % 4], "choice_a": "One", "choice_b": "Two",
                 "choice_c": "Three", "choice_d": "Four", "question_type_id": dim}
            if dim <= 9:
                data_id = f"{1454426 + dim}_{2591111986 + k}"
                image(root / "image" / data_id, (dim * 20, k * 70, 50), "JPEG")
                q.update(data_id=data_id, data_type="image", question_id=str(101669 + 10 * dim + k),
                         question="How many towels are in the image?")
            else:
                video, segment, sub = V1_VIDEOS[dim]
                qid = f"v{1738 + 10 * dim + k}"
                for i in range(1, 9):
                    image(root / "v1_video" / f"task{dim}" / sub / qid / f"{i}.png",
                          (i * 25, dim * 10, k * 60))
                q.update(data_id=video, data_type="video", question_id=qid,
                         question="What is the action being carried out in the video?")
                if segment is not None:
                    q["segment"] = segment
            questions.append(q)
    ann = root / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": questions, "question_type": V1_QUESTION_TYPE}))
    return ann, {"image": root / "image", "frames": root / "v1_video"}
