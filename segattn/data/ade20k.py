"""ADE20K (SceneParsing, ADEChallengeData2016): 150 classes, label 0 ("other") ignored.

Layout as the official ``ADEChallengeData2016.zip`` unpacks::

    ROOT/images/{training,validation}/ADE_train_00000001.jpg
    ROOT/annotations/{training,validation}/ADE_train_00000001.png   (0 = other, k = class k)

Labels are reduced by one ("reduce zero label", as the benchmark scores them):
raw k is train id k - 1 and raw 0 is ignored. ``train`` and ``val`` are
accepted for ``training`` and ``validation``.
"""
from .listed import ListedDataset, folder_pairs, reduce_zero, register

CLASS_NAMES = [
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet',
    'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water',
    'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk',
    'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
    'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand',
    'path', 'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge',
    'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove',
    'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus',
    'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver',
    'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle',
    'buffet', 'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything',
    'swimming pool', 'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven',
    'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher',
    'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan',
    'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock',
    'flag',
]
ALIASES = {"train": "training", "val": "validation"}


@register
class ADE20KDataset(ListedDataset):
    name = "ade20k"
    title = "ADE20K"
    class_names = CLASS_NAMES
    labels = {".png": reduce_zero(150)}
    layout = ("ROOT/images/{training,validation}/*.jpg and ROOT/annotations/{training,validation}/*.png, as "
              "ADEChallengeData2016.zip unpacks (http://sceneparsing.csail.mit.edu)")

    @classmethod
    def split_files(cls, root, split):
        split = ALIASES.get(split, split)
        return folder_pairs(root, split, "images", "annotations", ".jpg", [".png"], cls.layout)
