"""The UI's words in English and Chinese; the language follows the browser unless the user picks one."""
from __future__ import annotations

LANGUAGES = {"auto": "Auto / 自动", "en": "English", "zh": "中文"}

_TEXTS: dict[str, tuple[str, str]] = {
    # page and tabs
    "title": ("Your documents", "我的文档"),
    "log_in": ("Sign in", "登录"),
    "password": ("Password", "密码"),
    "wrong_password": ("Wrong password.", "密码错误。"),
    "chat": ("Chat", "对话"),
    "documents": ("Documents", "文档库"),
    "no_index": ("No knowledge base yet: add documents in the Documents tab.", "知识库还是空的：请在「文档库」页添加文档。"),
    # sidebar
    "settings": ("Settings", "设置"),
    "settings_saved": ("Saved for this knowledge base.", "已为此知识库保存。"),
    "language": ("Language", "界面语言"),
    "mode": ("Retrieval", "检索方式"),
    "mode_hybrid": ("Hybrid (BM25 + dense)", "混合（BM25 + 向量）"),
    "mode_dense": ("Dense (embeddings)", "向量检索"),
    "mode_bm25": ("BM25 (keywords)", "BM25 关键词"),
    "fusion": ("RAG-Fusion (query variants)", "RAG-Fusion（多查询融合）"),
    "fusion_help": ("When the first pass looks unsure, search again with query variants and fuse all lists. With the "
                    "default embedder the variants are the LLM's rewrites: without an LLM this is the hybrid search.",
                    "首轮结果不确定时，用改写后的多个查询再检索，并融合所有结果。默认嵌入模型下查询变体由 LLM 改写生成："
                    "未配置 LLM 时即为混合检索。"),
    "top_k": ("Passages per answer", "每个回答使用的段落数"),
    "reranker": ("Reranker (cross-encoder folder; empty: none)", "重排序模型（cross-encoder 目录；留空则不用）"),
    "backend": ("Answer with", "回答方式"),
    "backend_extractive": ("Extractive (no model)", "抽取式（无需模型）"),
    "backend_hf": ("Local Hugging Face model", "本地 Hugging Face 模型"),
    "backend_openai": ("OpenAI-compatible server", "OpenAI 兼容服务"),
    "hf_model": ("Model folder", "模型目录"),
    "adapter": ("LoRA adapter folder (optional)", "LoRA 适配器目录（可选）"),
    "server_url": ("Server URL", "服务地址"),
    "server_model": ("Model name", "模型名称"),
    "needs_value": ("Fill in {field} to use this backend; answering extractively until then.",
                    "请填写「{field}」才能使用该方式；在此之前使用抽取式回答。"),
    # chat
    "ask": ("Ask your documents…", "向文档提问…"),
    "new_chat": ("New chat", "新对话"),
    "stage_searching": ("Searching your documents…", "正在检索文档…"),
    "stage_reading": ("Reading the passages found…", "正在阅读找到的段落…"),
    "stage_writing": ("Writing the answer…", "正在撰写回答…"),
    "stopped": ("stopped", "已停止"),
    "export": ("Export (Markdown)", "导出（Markdown）"),
    "answering_failed": ("Could not answer: {error}", "无法回答：{error}"),
    "unsupported": ("Marked sentences are not supported by the passages they cite.",
                    "标记的句子没有得到所引用段落的支持。"),
    "nearest": ("Nearest passages in your documents", "文档中最接近的段落"),
    "nothing_close": ("Nothing close was found.", "没有找到相近的内容。"),
    "source": ("Source [{n}]: {file}, page {page}", "来源 [{n}]：{file}，第 {page} 页"),
    "page_not_marked": ("The passage could not be located on the page image (no text layer match).",
                        "无法在页面图像上定位该段落（文本层不匹配）。"),
    "whole_page": ("Whole page {page}", "第 {page} 页全页"),
    "page_unavailable": ("No page image: {reason}", "无法显示页面图像：{reason}"),
    "inspector": ("Retrieval inspector", "检索详情"),
    "inspector_summary": ("mode {mode}; searched for: {query}; evidence {evidence:.2f}; dense weight {weight:.2f}; fusion {fusion}",
                          "模式 {mode}；检索语句：{query}；证据分 {evidence:.2f}；向量权重 {weight:.2f}；融合 {fusion}"),
    "variants": ("Query variants", "查询变体"),
    "timings": ("Timings (ms)", "耗时（毫秒）"),
    "comment": ("Comment (optional)", "补充说明（可选）"),
    "thanks": ("Thanks, saved.", "谢谢，已保存。"),
    # documents
    "files": ("Files", "文件"),
    "pages": ("Pages", "页数"),
    "chunks": ("Chunks", "段落"),
    "embedder": ("Index {index} ({generation}); embedder {name}, {dimension} dimensions",
                 "索引 {index}（{generation}）；向量模型 {name}，{dimension} 维"),
    "unk_warning": ("{share:.0%} of the indexed text is unknown to the embedder, so dense search is weak for it "
                    "(Chinese under an English model); ingest it into a new index with the multilingual default "
                    "embedder: rag ingest FOLDER --index NEW --embedder e5-small",
                    "已索引文本中有 {share:.0%} 不在向量模型的词表里（英文模型处理中文），向量检索对这部分效果很弱；"
                    "请用多语言默认模型重新建索引：rag ingest 文件夹 --index 新索引 --embedder e5-small"),
    "add": ("Add documents", "添加文档"),
    "upload": ("Upload files (PDF, Word, HTML, Markdown, text, scans and photos of pages; up to {limit} MB each)",
               "上传文件（PDF、Word、HTML、Markdown、文本、扫描件和页面照片；每个不超过 {limit} MB）"),
    "ocr": ("Read scanned pages and images (OCR)", "识别扫描页和图片中的文字（OCR）"),
    "ocr_auto": ("where a page has no text layer", "仅无文字层的页面"),
    "ocr_always": ("every page", "所有页面"),
    "ocr_never": ("never", "不识别"),
    "ingest_uploads": ("Ingest uploaded files", "导入上传的文件"),
    "folder": ("…or a folder on this computer", "……或本机上的文件夹"),
    "ingest_folder": ("Ingest folder", "导入文件夹"),
    "watch_folder": ("Watch folder", "监视文件夹"),
    "watch_help": ("Keep the knowledge base in sync with this folder: new, changed, renamed and deleted files are "
                   "synced a few seconds after they change, while this server runs.",
                   "让知识库与此文件夹保持同步：新增、修改、重命名和删除的文件会在变化几秒后同步（服务运行期间）。"),
    "watching": ("Watching {path}: it is synced now and after every change.", "正在监视 {path}：现在同步一次，之后每次变化都会同步。"),
    "watched": ("Kept in sync: {path} — {state}", "保持同步：{path} — {state}"),
    "sync_pending": ("first sync running…", "首次同步进行中…"),
    "unwatch": ("Stop watching", "停止监视"),
    "not_a_folder": ("{path}: not a folder on this computer", "{path}：本机上没有这个文件夹"),
    "rejected": ("{name}: {reason}", "{name}：{reason}"),
    "progress_files": ("Reading files {done}/{total}", "读取文件 {done}/{total}"),
    "progress_ocr": ("OCR page {done}/{total}", "OCR 识别第 {done}/{total} 页"),
    "progress_embedding": ("Embedding passages {done}/{total}", "向量化段落 {done}/{total}"),
    "progress_rate": (" · {rate:.1f} passages/s, about {left} left", " · 每秒 {rate:.1f} 段，约剩 {left}"),
    "ingested": ("Done: {added} added, {updated} updated, {unchanged} unchanged, {failed} failed; {pages} pages, {chunks} chunks.",
                 "完成：新增 {added}，更新 {updated}，未变 {unchanged}，失败 {failed}；{pages} 页，{chunks} 个段落。"),
    "failed_file": ("{path}: {reason}", "{path}：{reason}"),
    "busy": ("The index is busy: {error}", "索引正忙：{error}"),
    "in_index": ("In the knowledge base", "知识库中的文档"),
    "manage": ("Selected documents", "选中的文档"),
    "choose": ("Choose documents to re-ingest or delete", "选择要重新导入或删除的文档"),
    "reingest": ("Re-ingest", "重新导入"),
    "delete": ("Delete from the knowledge base", "从知识库删除"),
    "confirm_delete": ("Delete {n} document(s)? Uploaded copies are deleted too; files in your own folders stay on disk.",
                       "确定删除 {n} 个文档？上传的副本会一并删除；您自己文件夹中的文件保留在磁盘上。"),
    "confirm": ("Yes, delete", "确定删除"),
    "cancel": ("Cancel", "取消"),
    "deleted": ("Deleted {n} document(s).", "已删除 {n} 个文档。"),
    "col_file": ("file", "文件"),
    "col_folder": ("folder", "位置"),
    "col_status": ("status", "状态"),
    "col_ingested": ("ingested", "导入时间"),
    "col_problem": ("problem", "问题"),
    "feedback_export": ("Export thumbs-up answers as eval cases ({n})", "将点赞的回答导出为评测用例（{n}）"),
}


def pick_language(setting: str, browser_locale: str | None) -> str:
    """``en`` or ``zh``: the setting unless ``auto``, else the browser's locale (``zh-CN`` → ``zh``)."""
    if setting in ("en", "zh"):
        return setting
    return "zh" if (browser_locale or "").lower().startswith("zh") else "en"


class Texts:
    """The UI strings in one language.

    Example:
        >>> Texts("zh")("source", n=1, file="guide.pdf", page=2)
        '来源 [1]：guide.pdf，第 2 页'
    """

    def __init__(self, language: str) -> None:
        self.language = language
        self._column = 1 if language == "zh" else 0

    def __call__(self, key: str, **values: object) -> str:
        text = _TEXTS[key][self._column]
        return text.format(**values) if values else text
