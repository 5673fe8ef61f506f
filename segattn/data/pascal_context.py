"""Pascal Context, 59 classes: the VOC2010 images with the context labels, background ignored.

The community standard form, which mmsegmentation's converter writes
(``tools/dataset_converters/pascal_context.py VOCdevkit trainval_merged.json``,
from the Detail API's ``trainval_merged.json``)::

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClassContext/<id>.png     (0 = background, k = class k of the 59)
    ROOT/ImageSets/SegmentationContext/{train,val}.txt

ROOT is ``VOCdevkit/VOC2010``. As in the 59-class benchmark, raw 0 is ignored
and raw k is train id k - 1.
"""
import os

from .listed import ListedDataset, listed_pairs, read_list, reduce_zero, register

CLASS_NAMES = [
    'aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird', 'boat', 'book', 'bottle', 'building',
    'bus', 'cabinet', 'car', 'cat', 'ceiling', 'chair', 'cloth', 'computer', 'cow', 'cup', 'curtain', 'dog',
    'door', 'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'horse', 'keyboard', 'light', 'motorbike',
    'mountain', 'mouse', 'person', 'plate', 'platform', 'pottedplant', 'road', 'rock', 'sheep', 'shelves',
    'sidewalk', 'sign', 'sky', 'snow', 'sofa', 'table', 'track', 'train', 'tree', 'truck', 'tvmonitor', 'wall',
    'water', 'window', 'wood',
]


@register
class PascalContextDataset(ListedDataset):
    name = "pascal_context"
    title = "Pascal Context"
    class_names = CLASS_NAMES
    labels = {"": reduce_zero(59)}
    layout = ("ROOT/JPEGImages/<id>.jpg, ROOT/SegmentationClassContext/<id>.png and "
              "ROOT/ImageSets/SegmentationContext/<split>.txt (ROOT = VOCdevkit/VOC2010, labels from "
              "mmsegmentation's pascal_context converter)")

    @classmethod
    def split_files(cls, root, split):
        ids = read_list(os.path.join(root, "ImageSets", "SegmentationContext", f"{split}.txt"), cls.layout)
        return listed_pairs(root, split, ids, ("SegmentationClassContext",), cls.layout)
