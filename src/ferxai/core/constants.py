"""Names shared by every stage: expressions, networks and the canonical canvas."""

# Order defines the class index (label) everywhere: Anger=0 ... Surprise=5.
EXPRESSIONS: tuple[str, ...] = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
NEUTRAL = "Neutral"

# The paper's 12 networks, as it writes them; the four trained from scratch come first.
SCRATCH_NETWORKS: tuple[str, ...] = ("WeiNet", "SongNet", "SilNet", "AlexNet")
PRETRAINED_NETWORKS: tuple[str, ...] = (
    "VGG16",
    "VGG19",
    "ResNet50",
    "ResNet101V2",
    "InceptionV3",
    "Xception",
    "MobileNetV3Large",
    "EfficientNetV2B0",
)
NETWORKS: tuple[str, ...] = SCRATCH_NETWORKS + PRETRAINED_NETWORKS


def network_order(names) -> list[str]:
    """The paper's network order for known names, then any other name alphabetically."""
    known = [n for n in NETWORKS if n in names]
    return known + sorted(set(names) - set(known))


# Canonical face space of the paper: 224 wide x 275 high, face box (0, 0, 224, 250).
CANVAS_WIDTH = 224
CANVAS_HEIGHT = 275
FACE_BOX = (0, 0, 224, 250)

# Default label aliases (lower-case key -> canonical expression).
LABEL_ALIASES: dict[str, str] = {
    "anger": "Anger",
    "angry": "Anger",
    "an": "Anger",
    "disgust": "Disgust",
    "disgusted": "Disgust",
    "di": "Disgust",
    "fear": "Fear",
    "fearful": "Fear",
    "afraid": "Fear",
    "fe": "Fear",
    "happiness": "Happiness",
    "happy": "Happiness",
    "joy": "Happiness",
    "ha": "Happiness",
    "sadness": "Sadness",
    "sad": "Sadness",
    "sa": "Sadness",
    "surprise": "Surprise",
    "surprised": "Surprise",
    "su": "Surprise",
    "neutral": "Neutral",
    "ne": "Neutral",
}
