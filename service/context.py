"""What every use case needs, built once per process (or per test): the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from guides import Guide
from labeling.gateway import LabelStudioGateway
from service.auth.signing import MediaSigner
from service.core.settings import Settings
from service.learning.runtime import ModelRuntime


@dataclass
class ServiceContext:
    settings: Settings
    guide: Guide
    engine: Engine
    sessions: sessionmaker[Session]
    runtime: ModelRuntime
    gateway: LabelStudioGateway
    media: MediaSigner  # signs the image URLs handed to annotators' browsers
