"""geoip"""
