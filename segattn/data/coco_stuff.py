"""COCO-Stuff 164k: 171 classes (80 things, 91 stuff), 255 ignored.

Layout of the official ``train2017.zip`` / ``val2017.zip`` images and
``stuffthingmaps_trainval2017.zip`` labels::

    ROOT/images/{train2017,val2017}/<name>.jpg
    ROOT/annotations/{train2017,val2017}/<name>.png   (stuffthingmaps: COCO id - 1, 255 unlabeled)

The stuffthingmaps hold COCO's ids (0-based), 182 of them of which 11 are
never used (the 10 thing ids COCO skips, and 90); they map to the 171 train
ids in id order. ``<name>_labelTrainIds.png`` files (mmsegmentation's
``coco_stuff164k`` converter output) are read as train ids where present.
"""
from .listed import ListedDataset, folder_pairs, register, table

CLASS_NAMES = [
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
    'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
    'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
    'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush', 'banner', 'blanket', 'branch', 'bridge', 'building-other', 'bush',
    'cabinet', 'cage', 'cardboard', 'carpet', 'ceiling-other', 'ceiling-tile', 'cloth', 'clothes', 'clouds',
    'counter', 'cupboard', 'curtain', 'desk-stuff', 'dirt', 'door-stuff', 'fence', 'floor-marble',
    'floor-other', 'floor-stone', 'floor-tile', 'floor-wood', 'flower', 'fog', 'food-other', 'fruit',
    'furniture-other', 'grass', 'gravel', 'ground-other', 'hill', 'house', 'leaves', 'light', 'mat', 'metal',
    'mirror-stuff', 'moss', 'mountain', 'mud', 'napkin', 'net', 'paper', 'pavement', 'pillow', 'plant-other',
    'plastic', 'platform', 'playingfield', 'railing', 'railroad', 'river', 'road', 'rock', 'roof', 'rug',
    'salad', 'sand', 'sea', 'shelf', 'sky-other', 'skyscraper', 'snow', 'solid-other', 'stairs', 'stone',
    'straw', 'structural-other', 'table', 'tent', 'textile-other', 'towel', 'tree', 'vegetable', 'wall-brick',
    'wall-concrete', 'wall-other', 'wall-panel', 'wall-stone', 'wall-tile', 'wall-wood', 'water-other',
    'waterdrops', 'window-blind', 'window-other', 'wood',
]

UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)  # 1-based COCO ids without a class
RAW_TO_TRAIN = {raw: train for train, raw in
                enumerate(i - 1 for i in range(1, 183) if i not in UNUSED_IDS)}
TRAIN_IDS = "_labelTrainIds.png"


@register
class COCOStuffDataset(ListedDataset):
    name = "coco_stuff"
    title = "COCO-Stuff"
    class_names = CLASS_NAMES
    labels = {TRAIN_IDS: table({k: k for k in range(171)}), ".png": table(RAW_TO_TRAIN)}
    layout = ("ROOT/images/{train2017,val2017}/*.jpg and ROOT/annotations/{train2017,val2017}/*.png "
              "(stuffthingmaps_trainval2017.zip) or *_labelTrainIds.png")

    @classmethod
    def split_files(cls, root, split):
        return folder_pairs(root, split, "images", "annotations", ".jpg", [TRAIN_IDS, ".png"], cls.layout)
